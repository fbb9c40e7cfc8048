import optuna

from runpoint.integrations.optuna import RunpointCallback

tracker = RunpointCallback(project="sweeps")


@tracker.track_in_runpoint()  # the trial's run exists while it trains
def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    loss = 1.0
    for epoch in range(5):
        loss *= 1 - lr  # stands in for an epoch of training
        tracker.run.log({"val/loss": loss}, step=epoch)
        trial.report(loss, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


study = optuna.create_study(study_name="lr-sweep")
study.optimize(objective, n_trials=5, callbacks=[tracker])
# runpoint ls --group lr-sweep; runpoint compare --group lr-sweep
