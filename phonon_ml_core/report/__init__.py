"""Reports: figures, latent-space analysis, the evaluation report and the demo."""
