"""The app's pages: Capture, Review, Reconstruct, Export."""
