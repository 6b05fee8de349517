"""Telugu speech data: synthesis with espeak-ng, manifests and importers."""
