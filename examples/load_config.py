import runpoint as rp

cfg = rp.load_config("examples/configs/base.yaml", profile="dev",
                     overrides=["training.learning_rate=1e-2", "model.hidden_sizes=[256,128]"])
print(cfg.training.learning_rate, cfg.training.epochs, cfg.model.hidden_sizes)  # 0.01 2 [256, 128]
print(cfg.data.eval_batch_size)                                                 # 64, from ${training.batch_size}
print(cfg.training.checkpoint.manager_kwargs())  # keywords for rp.CheckpointManager(run, ...)

with rp.init(config=cfg) as run:  # project "digits", tags [mlp, dev] and notes come from cfg.experiment
    run.log({"train/loss": 0.5}, step=0)
print(rp.config.config_hash(cfg)[:12])  # the hash the run recorded: `runpoint ls --config-hash <it>`
