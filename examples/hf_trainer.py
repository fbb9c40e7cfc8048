import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from runpoint.integrations.hf import RunpointCallback

model = BertForSequenceClassification(BertConfig(  # a tiny model from a config: nothing to download
    vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=2))
ids = torch.randint(1, 50, (64, 12))
data = [{"input_ids": row, "labels": int(row[0] > 25)} for row in ids]
args = TrainingArguments(output_dir="hf_out", max_steps=8, logging_steps=2, save_strategy="no", report_to="none")
trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[RunpointCallback(project="hf")])
trainer.train()
