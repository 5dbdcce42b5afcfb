"""The scikit-learn estimator protocol, shared by logiclens' estimators.

Constructor arguments are the parameters; each is stored verbatim as an attribute of the
same name and never changed by ``fit``. Fitted attributes end in ``_``. :func:`clone` makes
an unfitted copy (``sklearn.base.clone`` works too), and :func:`check_is_fitted` says when
a method needs ``fit`` first.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, TypeVar

__all__ = ["EXECUTION_PARAMS", "BaseEstimator", "NotFittedError", "check_is_fitted", "clone", "result_params"]

#: parameters that say how an estimator runs, never what it computes
EXECUTION_PARAMS = ("n_jobs", "verbose", "backend", "ray_address")

E = TypeVar("E", bound="BaseEstimator")


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted estimator was called before ``fit``."""


class BaseEstimator:
    """``get_params`` (nested with ``deep=True``), ``set_params`` and a ``repr`` of the changed parameters."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator; with ``deep``, also those of nested estimators as ``name__param``."""
        params: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            params[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{name}__{key}": inner for key, inner in value.get_params(deep=True).items()})
        return params

    def set_params(self: E, **params: Any) -> E:
        """Set parameters (``name__param`` reaches into nested estimators); returns ``self``."""
        valid = set(self._param_names())
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, inner = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            if inner:
                nested.setdefault(name, {})[inner] = value
            else:
                setattr(self, name, value)
        for name, inner_params in nested.items():
            target = getattr(self, name)
            if not hasattr(target, "set_params"):
                raise ValueError(f"parameter {name!r} of {type(self).__name__} is not an estimator")
            target.set_params(**inner_params)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items() if not _same(defaults.get(k), v)]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without a plain truth value
        return a is b


def clone(estimator: E) -> E:
    """A new, unfitted estimator with the same parameters (nested estimators cloned too)."""
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        params[name] = clone(value) if isinstance(value, BaseEstimator) else copy.deepcopy(value)
    return type(estimator)(**params)


def check_is_fitted(estimator: BaseEstimator, attribute: str | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has been fitted.

    Parameters
    ----------
    estimator : BaseEstimator
    attribute : str, optional
        A fitted attribute to look for; by default any public attribute ending in ``_``.
    """
    if attribute is not None:
        fitted = hasattr(estimator, attribute)
    else:
        fitted = any(name.endswith("_") and not name.startswith("_") for name in vars(estimator))
    if not fitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit() first")


def result_params(estimator: BaseEstimator) -> dict[str, object]:
    """The parameters that determine what ``estimator`` computes (all but :data:`EXECUTION_PARAMS`), deep."""
    return {
        name: value
        for name, value in estimator.get_params(deep=True).items()
        if name.rpartition("__")[2] not in EXECUTION_PARAMS and not isinstance(value, BaseEstimator)
    }
