import torch
from accelerate import Accelerator

from runpoint.integrations.accelerate import RunpointTracker

accelerator = Accelerator(cpu=True, log_with=RunpointTracker(project="accelerate"))  # main process only
accelerator.init_trackers("accelerate", config={"optimizer": {"lr": 0.1}})
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = accelerator.prepare(model, optimizer)
for step in range(20):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    accelerator.log({"train/loss": loss.item()}, step=step)
accelerator.end_training()
