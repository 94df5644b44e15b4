"""fastgrad.utils.data as torch.utils.data: datasets, samplers, default_collate, DataLoader."""
from fastgrad.utils.data.dataset import (Dataset, IterableDataset, TensorDataset, Subset,
                                         ConcatDataset, ChainDataset, random_split)
from fastgrad.utils.data.sampler import (Sampler, SequentialSampler, RandomSampler,
                                         SubsetRandomSampler, WeightedRandomSampler,
                                         BatchSampler)
from fastgrad.utils.data._collate import default_collate, default_convert
from fastgrad.utils.data._worker import get_worker_info, WorkerInfo
from fastgrad.utils.data.dataloader import DataLoader

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
           "ChainDataset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "default_collate",
           "default_convert", "get_worker_info", "WorkerInfo", "DataLoader"]
