"""Datasets: loaders for the standard folder layouts of real multitrack sets (:mod:`.real`)."""

from .real import DSD100, MUSDB18HQ, ENSTDrums, MedleyDB

__all__ = ["ENSTDrums", "MedleyDB", "MUSDB18HQ", "DSD100"]
