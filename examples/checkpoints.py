import torch
import runpoint as rp
from runpoint.checkpoint import ResumableSampler

data = torch.utils.data.TensorDataset(torch.randn(512, 8), torch.randint(0, 2, (512,)))
sampler = ResumableSampler(len(data), seed=0)  # a data order that resumes mid-epoch
loader = torch.utils.data.DataLoader(data, batch_size=32, sampler=sampler, generator=sampler.generator)
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
state = {"model": model, "optimizer": optimizer, "sampler": sampler}

with rp.init(project="ckpt-demo", resume=None) as run:  # resume="latest" continues a stopped run
    ckpt = rp.CheckpointManager(run, keep_last=3, keep_best=1, monitor="val/loss", mode="min")
    step = ckpt.restore(state) or 0  # the step after the checkpoint's (later metrics are dropped), or 0
    ckpt.save_on_preemption()  # SIGTERM / SIGUSR1: save at the next step boundary, then exit
    while sampler.epoch < 5:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"train/loss": loss.detach()}, step=step)
            if ckpt.should_save(step):  # True right after a preemption signal
                ckpt.save(step, state)  # ... and this save then ends the process
            step += 1
        ckpt.save(step - 1, state, metrics={"val/loss": loss.item()})  # step: the one just finished
    ckpt.export("model.safetensors")  # the best checkpoint's weights alone, for deployment
