"""The base of every settings section: strict, secrets given inline or as `<key>_file`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

PositiveFloat = Annotated[float, Field(gt=0)]


def _read_secret_file(key: str, raw: Any) -> str:
    """Read a secret from a file; a relative path is taken from $CREDENTIALS_DIRECTORY (systemd)."""
    path = Path(str(raw))
    hint = ""
    if not path.is_absolute():
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds:
            path = Path(creds) / path
        else:
            hint = ("; $CREDENTIALS_DIRECTORY is unset (it is set by systemd's LoadCredential=), "
                    f"so the path is relative to the working directory {Path.cwd()}")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise ValueError(f"{key}_file: cannot read {path} ({err.strerror}){hint}") from None


class _SecretFile(str):
    """A `<key>_file` path waiting to be read by the field's own validator.

    Reading it there, not in the model's before-validator, keeps one unreadable file from
    hiding the section's other problems: every problem is reported in one pass.
    """

    __slots__ = ()


class _BothGiven(str):
    """`x` and `x_file` both given: an error of field `x`, raised by its own validator so that the
    section's other problems are still found."""

    __slots__ = ()


_TRUE, _FALSE = ("true", "1"), ("false", "0")  # what a boolean may say in the environment


class Section(BaseModel):
    """A config section: unknown keys are errors, and any secret `x` may be given as `x_file`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in [k for k in data if isinstance(k, str) and k.endswith("_file")]:
            name = key[: -len("_file")]
            field = cls.model_fields.get(name)
            if field is None or "SecretStr" not in repr(field.annotation):
                continue
            raw = data.pop(key)
            data[name] = _BothGiven(name) if data.get(name) else _SecretFile(str(raw))
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _read_file(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, _BothGiven):
            raise ValueError(f"give either {value} or {value}_file, not both")
        if isinstance(value, _SecretFile):
            return _read_secret_file(info.field_name or "secret", value)
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take "yes", "on", 1: a boolean is true or false (in the environment,
        # where every value is text, also "1" or "0").
        field = cls.model_fields.get(info.field_name or "")
        if field is None or field.annotation is not bool or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("must be true or false")
