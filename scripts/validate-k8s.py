#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests (a multi-document YAML file per argument).

Kubernetes' own kinds go through kubernetes-validate, strictly, for the Kubernetes version in
$K8S_VERSION (default 1.32.0); CloudNativePG's Cluster and Pooler through the schemas in
k8s/schemas/ (strict: unknown fields are errors). Any other kind fails: a kind nothing checks
is not let through. Prints one line per resource; exits 1 on any failure.
"""
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "k8s", "schemas")
CUSTOM = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster-postgresql-v1.json",
    ("postgresql.cnpg.io/v1", "Pooler"): "pooler-postgresql-v1.json",
}


def strict(schema):
    """The schema with unknown properties refused wherever it lists properties (unless it
    preserves unknown fields, as Kubernetes' structural schemas say)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def main(paths):
    version = os.environ.get("K8S_VERSION", "1.32.0")
    failures = 0
    checked = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            name = f"{path}: {kind} {doc.get('metadata', {}).get('name')}"
            checked += 1
            try:
                if (api, kind) in CUSTOM:
                    with open(os.path.join(SCHEMAS, CUSTOM[(api, kind)]), encoding="utf-8") as f:
                        schema = strict(json.load(f))
                    # apiVersion, kind and metadata are the API server's to check.
                    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
                    schema["properties"] = {
                        k: v for k, v in schema.get("properties", {}).items()
                        if k not in ("apiVersion", "kind", "metadata")
                    }
                    schema["required"] = [
                        r for r in schema.get("required", [])
                        if r not in ("apiVersion", "kind", "metadata")
                    ]
                    jsonschema.validate(body, schema)
                else:
                    kubernetes_validate.validate(doc, version, strict=True)
                print(f"ok   {name}")
            except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
                failures += 1
                print(f"FAIL {name}: {e}".splitlines()[0])
            except kubernetes_validate.SchemaNotFoundError:
                failures += 1
                print(f"FAIL {name}: no schema for {api} {kind}")
    print(f"{checked} resources, {failures} failed")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
