import torch

import runpoint as rp

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(512, 16)
y = x[:, :4].argmax(1)                                             # a learnable rule

with rp.init(project="diagnostics", system_metrics=5.0) as run:   # CPU, memory, disk, network, GPU every 5 s
    run.log_model(model, example_input=x[:8])                      # model_summary.txt + parameter counts as params
    run.watch(model, every=50, max_grad_norm=1.0)                  # grad/param norms, update ratio, NaN/Inf counts
    run.monitor("val/acc", mode="max")                             # best/val/acc and its step in the summary
    timer = run.step_timer()
    for step in range(300):
        batch = torch.randint(0, 512, (64,))
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({"train/loss": loss.detach()}, step=step)
        timer.tick(samples=64)                                     # perf/step_time_s, samples_per_s, peak memory
        if step % 50 == 49:
            with torch.no_grad():
                logits = model(x)
            run.log({
                "val/loss": torch.nn.functional.cross_entropy(logits, y),
                "val/acc": (logits.argmax(1) == y).float().mean(),
                "val/logits": rp.Histogram(logits),                # bins are counted on the writer thread
                "val/inputs": rp.Image(torch.sigmoid(x[:8]).reshape(8, 1, 4, 4)),  # a grid of 8 images
                "val/predictions": rp.Table([[i, int(y[i]), int(logits[i].argmax())] for i in range(5)],
                                            columns=["index", "label", "predicted"]),
            }, step=step)
print(run.id)
