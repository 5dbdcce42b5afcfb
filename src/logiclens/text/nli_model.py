"""The NLI architecture of Mu & Andreas (2020), after Bowman et al. (2016), in plain torch.

A sentence encoder turns premise and hypothesis into vectors u and v; the classifier sees
``[u, v, u * v, u - v]`` and runs an MLP with two 1,024-unit ReLU layers and a 3-way output
(softmax in :meth:`NLIModel.predict_proba`; training uses the logits with cross-entropy).
The probed units are the 1,024 outputs of the second ReLU, the layer called
``head.mlp.relu2`` (``mlp.relu2`` of a bare :class:`MLPHead`).

The encoder, as in the reference code (``BowmanEntailmentClassifier``): a 300-d embedding
and a single-layer **unidirectional** LSTM with 512 hidden units whose last hidden state is
the sentence vector (the paper's text says BiLSTM; ``bidirectional=True`` concatenates the
last states of both directions).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["LSTMEncoder", "MLPHead", "NLIModel", "pair_features"]


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The classifier input ``[u, v, u * v, u - v]`` (4 d features from two d-dim vectors)."""
    return torch.cat([u, v, u * v, u - v], dim=-1)


class MLPHead(nn.Module):
    """MLP over pair features: ``n_hidden`` Linear-ReLU-Dropout blocks, then a linear output.

    Parameters
    ----------
    in_features : int
        Size of one sentence vector d; the MLP's input is 4 d (see :func:`pair_features`).
    hidden : int, default 1024
    n_hidden : int, default 2
        Number of hidden ReLU layers (the paper: 2). Layers are named ``fc1, relu1, drop1,
        fc2, relu2, drop2, ..., out`` inside ``self.mlp``; the last ReLU is
        :attr:`penultimate`.
    n_classes : int, default 3
    dropout : float, default 0.1
    """

    def __init__(
        self, in_features: int, hidden: int = 1024, n_hidden: int = 2, n_classes: int = 3, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if n_hidden < 1:
            raise ValueError(f"n_hidden must be >= 1, got {n_hidden}")
        self.config = {
            "in_features": in_features, "hidden": hidden, "n_hidden": n_hidden, "n_classes": n_classes,
            "dropout": dropout,
        }  # fmt: skip
        layers: list[tuple[str, nn.Module]] = []
        width = 4 * in_features
        for i in range(1, n_hidden + 1):
            layers += [(f"fc{i}", nn.Linear(width, hidden)), (f"relu{i}", nn.ReLU()), (f"drop{i}", nn.Dropout(dropout))]
            width = hidden
        layers.append(("out", nn.Linear(width, n_classes)))
        self.mlp = nn.Sequential(OrderedDict(layers))

    @property
    def penultimate(self) -> str:
        """Name of the last hidden ReLU, relative to this module (``mlp.relu2``)."""
        return f"mlp.relu{self.config['n_hidden']}"

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Logits for sentence vectors u (premises) and v (hypotheses), each (B, d)."""
        return self.mlp(pair_features(u, v))

    def predict_proba(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax of the logits), in eval mode without gradients."""
        return _predict(self, u, v)


class LSTMEncoder(nn.Module):
    """Token ids to a sentence vector: embedding, one-layer LSTM, last hidden state.

    Parameters
    ----------
    vocab_size : int
        Including the padding id 0 and the unknown-word id 1.
    embedding_dim : int, default 300
    hidden : int, default 512
    bidirectional : bool, default False
        The reference code's default (and the released model) is unidirectional.
    """

    def __init__(
        self, vocab_size: int, embedding_dim: int = 300, hidden: int = 512, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.config = {
            "vocab_size": vocab_size, "embedding_dim": embedding_dim, "hidden": hidden, "bidirectional": bidirectional,
        }  # fmt: skip
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, hidden, batch_first=True, bidirectional=bidirectional)

    @property
    def output_dim(self) -> int:
        """Size of the sentence vector."""
        return self.config["hidden"] * (2 if self.config["bidirectional"] else 1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, output_dim) of padded ids (B, T) with true lengths (B,)."""
        packed = pack_padded_sequence(
            self.embedding(ids), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = self.lstm(packed)
        if self.config["bidirectional"]:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]


class NLIModel(nn.Module):
    """Sentence encoder + :class:`MLPHead`: the paper's NLI classifier.

    Parameters
    ----------
    vocab_size : int
    embedding_dim, hidden, bidirectional
        See :class:`LSTMEncoder`.
    mlp_hidden, n_hidden, dropout
        See :class:`MLPHead`.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 300,
        hidden: int = 512,
        bidirectional: bool = False,
        mlp_hidden: int = 1024,
        n_hidden: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = LSTMEncoder(vocab_size, embedding_dim, hidden, bidirectional)
        self.head = MLPHead(self.encoder.output_dim, mlp_hidden, n_hidden, 3, dropout)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        enc, head = self.encoder.config, self.head.config
        return {
            "vocab_size": enc["vocab_size"], "embedding_dim": enc["embedding_dim"], "hidden": enc["hidden"],
            "bidirectional": enc["bidirectional"], "mlp_hidden": head["hidden"], "n_hidden": head["n_hidden"],
            "dropout": head["dropout"],
        }  # fmt: skip

    @property
    def penultimate(self) -> str:
        """Name of the probed layer (``head.mlp.relu2``)."""
        return f"head.{self.head.penultimate}"

    def forward(
        self, premise: torch.Tensor, premise_lengths: torch.Tensor, hypothesis: torch.Tensor, hyp_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, 3) for padded token ids and lengths of premises and hypotheses."""
        return self.head(self.encoder(premise, premise_lengths), self.encoder(hypothesis, hyp_lengths))

    def predict_proba(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities, in eval mode without gradients."""
        return _predict(self, *inputs)


def _predict(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            return torch.softmax(module(*inputs), dim=-1)
    finally:
        module.train(was_training)
