#!/usr/bin/env python3
"""Writes kubeconform JSON schemas from a Kubernetes OpenAPI v2 document.

    scripts/k8s-schemas.py SWAGGER_JSON OUT_DIR

The document is api/openapi-spec/swagger.json of the k8s.io/kubernetes Go
module (fetched through the Go module proxy; no other registry is
reachable from CI). For every kind in it, OUT_DIR/<kind>-<group>-<version>.json
(<kind>-<version>.json for the core group: kubeconform's file naming) holds
the kind's schema with the definitions it uses, strict as kubectl validates:
objects that list their properties allow no others, int-or-string fields
take either type, and the nullable optional fields accept null.
"""
import json
import os
import sys


def convert(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                out[k] = v
            else:
                out[k] = convert(v)
        if out.get("format") == "int-or-string":
            return {"oneOf": [{"type": "string"}, {"type": "integer"}],
                    **({"description": out["description"]} if "description" in out else {})}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [convert(v) for v in node]
    return node


def refs(node, acc):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/definitions/"):
            acc.add(r[len("#/definitions/"):])
        for v in node.values():
            refs(v, acc)
    elif isinstance(node, list):
        for v in node:
            refs(v, acc)


def closure(defs, name):
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen or n not in defs:
            continue
        seen.add(n)
        acc = set()
        refs(defs[n], acc)
        todo.extend(acc - seen)
    return seen


def main():
    swagger, out_dir = sys.argv[1], sys.argv[2]
    with open(swagger) as f:
        defs = {k: convert(v) for k, v in json.load(f)["definitions"].items()}
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
            suffix = version if not group else group.split(".")[0] + "-" + version
            schema = dict(d)
            # apiVersion and kind must name this kind exactly.
            props = dict(schema.get("properties", {}))
            api_version = version if not group else group + "/" + version
            props["apiVersion"] = {"type": "string", "enum": [api_version]}
            props["kind"] = {"type": "string", "enum": [kind]}
            schema["properties"] = props
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind"})
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["definitions"] = {n: defs[n] for n in closure(defs, name) if n != name}
            # The kind's own recursive references resolve to the top level.
            schema["definitions"][name] = d
            path = os.path.join(out_dir, "%s-%s.json" % (kind.lower(), suffix))
            with open(path, "w") as f:
                json.dump(schema, f)
            written += 1
    print("k8s-schemas: %d schemas in %s" % (written, out_dir))


if __name__ == "__main__":
    main()
