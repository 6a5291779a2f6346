"""Data: the bundled multitrack set (:mod:`.bundled`, made by :mod:`.compose` and mixed by :mod:`.engineer`)
and loaders for the standard folder layouts of real multitrack sets (:mod:`.real`)."""

from .bundled import (SAMPLE_RATE, SPLITS, TASKS, BundledDataset, cache_dir, collate, data_dir, load_song, manifest,
                      mix_params, reproduce_mix, song, songs, verify, wet_stems_of)
from .engineer import ENGINEERS, ROLES, engineer_mix, engineer_params
from .real import DSD100, MUSDB18HQ, ENSTDrums, MedleyDB

__all__ = ["BundledDataset", "collate", "data_dir", "manifest", "songs", "song", "verify", "load_song", "mix_params",
           "reproduce_mix", "wet_stems_of", "cache_dir", "SAMPLE_RATE", "TASKS", "SPLITS", "ENGINEERS", "ROLES", "engineer_mix",
           "engineer_params", "ENSTDrums", "MedleyDB", "MUSDB18HQ", "DSD100"]
