"""The request-parameter helpers, for the API's views (they live in ``app.params``)."""

from app.params import (
    CHINA,
    MAX_INT,
    bbox_arg,
    body_fields,
    bool_arg,
    bool_field,
    bool_value,
    float_arg,
    int_arg,
    int_field,
    int_value,
    json_body,
    moment,
    moment_arg,
    str_arg,
)

__all__ = [
    "CHINA",
    "MAX_INT",
    "bbox_arg",
    "body_fields",
    "bool_arg",
    "bool_field",
    "bool_value",
    "float_arg",
    "int_arg",
    "int_field",
    "int_value",
    "json_body",
    "moment",
    "moment_arg",
    "str_arg",
]
