"""SQL expressions over Member.attributes that segments compile to. Each renders for PostgreSQL
and SQLite, and keys and values are always parameters, never SQL text built from input."""

from __future__ import annotations

import json

from django.db import NotSupportedError
from django.db.models import BooleanField, F, FloatField, Func, IntegerField, TextField


def _json_path(key: str) -> str:
    # Always a quoted member name: an attribute key such as "2024" is not an array index.
    return "$." + json.dumps(key)


class _Unsupported:
    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("Segments run on PostgreSQL and SQLite.")


class JSONValue(_Unsupported, Func):
    """One attribute's value when its JSON type is ``kind``, else NULL.

    string → the text; number → a double; boolean → 'true' / 'false'; array → its length.
    """

    _PG_TYPE = {"string": "string", "number": "number", "boolean": "boolean", "array": "array"}

    def __init__(self, key: str, kind: str):
        output = {"number": FloatField(), "array": IntegerField()}.get(kind, TextField())
        super().__init__(F("attributes"), output_field=output)
        self.key, self.kind = key, kind

    def as_postgresql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        test = f"jsonb_typeof({col} -> %s::text) = '{self._PG_TYPE[self.kind]}'"
        value = {
            "string": f"{col} ->> %s::text",
            "number": f"({col} ->> %s::text)::double precision",
            "boolean": f"{col} ->> %s::text",
            "array": f"jsonb_array_length({col} -> %s::text)",
        }[self.kind]
        return f"(CASE WHEN {test} THEN {value} END)", (*params, self.key, *params, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        path = _json_path(self.key)
        if self.kind == "boolean":
            sql = (f"(CASE json_type({col}, %s) WHEN 'true' THEN 'true' "
                   f"WHEN 'false' THEN 'false' END)")
            return sql, (*params, path)
        test = {
            "string": "= 'text'", "number": "IN ('integer', 'real')", "array": "= 'array'",
        }[self.kind]
        value = {
            "string": f"json_extract({col}, %s)",
            "number": f"CAST(json_extract({col}, %s) AS REAL)",
            "array": f"json_array_length({col}, %s)",
        }[self.kind]
        return (f"(CASE WHEN json_type({col}, %s) {test} THEN {value} END)",
                (*params, path, *params, path))


class JSONHas(_Unsupported, Func):
    """Attribute ``key`` equals one of ``values`` (strings or booleans) with the same JSON type;
    with ``element=True``, the attribute is an array holding any (or, with ``every``, all) of
    the strings. Written as jsonb containment on PostgreSQL so that a GIN index can answer it."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, key: str, values: list, *, element: bool = False, every: bool = False):
        super().__init__(F("attributes"))
        self.key, self.values, self.element, self.every = key, list(values), element, every

    def as_postgresql(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        if self.element and self.every:
            probes = [{self.key: self.values}]
        elif self.element:
            probes = [{self.key: [v]} for v in self.values]
        else:
            probes = [{self.key: v} for v in self.values]
        sql = " OR ".join(f"{col} @> %s::jsonb" for _ in probes)
        args = []
        for probe in probes:
            args += [*params, json.dumps(probe, ensure_ascii=False)]
        return f"({sql})", tuple(args)

    def as_sqlite(self, compiler, connection, **extra):
        col, params = compiler.compile(self.source_expressions[0])
        path = _json_path(self.key)
        marks = ", ".join("%s" for _ in self.values)
        if not self.element:
            if all(isinstance(v, bool) for v in self.values):
                words = ["true" if v else "false" for v in self.values]
                return f"(IFNULL(json_type({col}, %s), '') IN ({marks}))", (*params, path, *words)
            return (f"(json_type({col}, %s) IS 'text' AND json_extract({col}, %s) IN ({marks}))",
                    (*params, path, *params, path, *self.values))
        elements = (f"FROM json_each({col}, %s) AS element "
                    f"WHERE element.type = 'text' AND element.value IN ({marks})")
        if self.every:
            test = f"(SELECT COUNT(DISTINCT element.value) {elements}) = %s"
            extra_params = (len(set(self.values)),)
        else:
            test = f"EXISTS (SELECT 1 {elements})"
            extra_params = ()
        return (f"(json_type({col}, %s) IS 'array' AND {test})",
                (*params, path, *params, path, *self.values, *extra_params))


class Bytewise(_Unsupported, Func):
    """Compare text by its bytes (code points), whatever the database's default collation."""

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f'({sql}) COLLATE "C"', params

    def as_sqlite(self, compiler, connection, **extra):
        return compiler.compile(self.source_expressions[0])  # SQLite's default is BINARY
