"""Datasets: loaders, image folders, MNIST files, threat models."""
