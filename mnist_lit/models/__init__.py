"""The networks, the LightningModule that trains them, their confidence, and inference from a checkpoint."""
