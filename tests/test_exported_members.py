import runpoint


def test_all_is_sorted_and_complete() -> None:
    assert runpoint.__all__ == sorted(runpoint.__all__)
    assert runpoint.__all__ == [
        "AliasConflictError",
        "ArchiveError",
        "CheckpointCorruptError",
        "CheckpointError",
        "CheckpointManager",
        "CheckpointNotFoundError",
        "ConfigError",
        "EncryptionKey",
        "Histogram",
        "Image",
        "InvalidArgumentError",
        "InvalidValueError",
        "MissingDependencyError",
        "ModelNotFoundError",
        "ModelVersion",
        "ProjectConfig",
        "Run",
        "RunExistsError",
        "RunNotFoundError",
        "RunStatus",
        "RunpointError",
        "SchemaVersionError",
        "StoreError",
        "Table",
        "Text",
        "init",
        "load_checkpoint",
        "load_config",
        "load_model",
        "model_version",
        "register_model",
    ]


def test_every_exported_name_resolves() -> None:
    for name in runpoint.__all__:
        assert getattr(runpoint, name) is not None, name
    assert set(runpoint.__all__) <= set(dir(runpoint))


def test_errors_refine_builtins() -> None:
    assert issubclass(runpoint.RunExistsError, FileExistsError)
    assert issubclass(runpoint.CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(runpoint.InvalidValueError, TypeError)
    assert issubclass(runpoint.ConfigError, ValueError)
    for name in runpoint.__all__:
        obj = getattr(runpoint, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, runpoint.RunpointError), name
