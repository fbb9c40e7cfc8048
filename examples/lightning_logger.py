import lightning as L
import torch

from runpoint.integrations.lightning import RunpointCheckpoint, RunpointLogger


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded as the run's params
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


x = torch.randn(256, 4)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)
logger = RunpointLogger(project="lightning")  # records on rank zero; save_hyperparameters() become params
checkpoint = RunpointCheckpoint(monitor="train/loss", keep_last=2, keep_best=1)  # into the run's checkpoints/
trainer = L.Trainer(max_epochs=3, log_every_n_steps=4, logger=logger, callbacks=[checkpoint], enable_progress_bar=False)
trainer.fit(Regressor(), data, ckpt_path=checkpoint.resume_path(logger))  # None: nothing to resume yet
