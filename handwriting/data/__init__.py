"""Data sources (each ``load() -> SourceData``) and the LightningDataModule that splits them."""

from handwriting.data.csv_source import CSVSource
from handwriting.data.datamodule import HandwritingDataModule
from handwriting.data.download import DownloadError
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.data.emnist import EMNIST
from handwriting.data.folder import ImageFolderSource
from handwriting.data.idx import read_idx
from handwriting.data.mnist import MNIST
from handwriting.data.types import LabeledImages, SourceData

__all__ = [
    "CSVSource", "DownloadError", "EMNIST", "EmbeddedMNIST", "HandwritingDataModule",
    "ImageFolderSource", "LabeledImages", "MNIST", "SourceData", "read_idx",
]
