"""Machine learning: autoencoder and regressor networks, training stages, physics stages, bundles, adaptation."""
