"""Checks rendered Kubernetes manifests (a YAML stream on stdin) for the one
mistake the API schemas cannot see: a Sluice *_FILE setting that names a file
no mounted Secret or ConfigMap provides. The services stop at startup on a
missing file, so each *_FILE variable of a container must point into one of
its volume mounts, at a key the mounted objects of these manifests hold (an
optional source that is not here provides nothing), and the same setting must
not also be given as a value.

Usage: python3 check_files.py NAME < rendered.yaml   (run by validate.sh)
"""

import posixpath
import sys

import yaml


def keys_of(obj):
    keys = set()
    for field in ("data", "stringData", "binaryData"):
        keys.update((obj.get(field) or {}).keys())
    return keys


def provided_files(volume, objects):
    """The file names a volume holds, or None when it cannot be known here."""

    def from_source(kind, source):
        name = source.get("name")
        if "items" in source:
            return {item["path"] for item in source["items"]}
        found = objects.get((kind, name))
        if found is not None:
            return keys_of(found)
        if source.get("optional"):
            return set()
        return None

    if "secret" in volume:
        source = dict(volume["secret"], name=volume["secret"].get("secretName"))
        return from_source("Secret", source)
    if "configMap" in volume:
        return from_source("ConfigMap", volume["configMap"])
    if "projected" in volume:
        files = set()
        for source in volume["projected"].get("sources") or []:
            for kind, field in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if field in source:
                    more = from_source(kind, source[field])
                    if more is None:
                        return None
                    files |= more
        return files
    return None


def environment(container, objects, problems, where):
    env = {}
    for source in container.get("envFrom") or []:
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field in source:
                ref = source[field]
                found = objects.get((kind, ref.get("name")))
                if found is None:
                    if not ref.get("optional"):
                        problems.append(f"{where}: envFrom names {kind} {ref.get('name')}, which is not here")
                    continue
                prefix = source.get("prefix", "")
                for key, value in {**(found.get("data") or {}), **(found.get("stringData") or {})}.items():
                    env[prefix + key] = value
    for var in container.get("env") or []:
        # A value from a secretKeyRef or the like counts as given.
        env[var["name"]] = "<from valueFrom>" if "valueFrom" in var else var.get("value", "")
    return env


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "manifests"
    documents = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    objects = {(doc.get("kind"), doc["metadata"]["name"]): doc for doc in documents}
    problems = []
    checked = 0
    for doc in documents:
        if doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
        for container in pod.get("containers") or []:
            where = f"{doc['kind'].lower()}/{doc['metadata']['name']} container {container['name']}"
            env = environment(container, objects, problems, where)
            mounts = container.get("volumeMounts") or []
            for name, path in sorted(env.items()):
                if not (name.startswith("SLUICE_") and name.endswith("_FILE")) or not path:
                    continue
                checked += 1
                value_name = name[: -len("_FILE")]
                if env.get(value_name):
                    problems.append(f"{where}: both {value_name} and {name} are set; give one")
                mount = max(
                    (m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")),
                    key=lambda m: len(m["mountPath"]),
                    default=None,
                )
                if mount is None:
                    problems.append(f"{where}: {name}={path} is under no volume mount")
                    continue
                relative = posixpath.relpath(path, mount["mountPath"])
                if mount.get("subPath"):
                    relative = posixpath.join(mount["subPath"], relative)
                files = provided_files(volumes.get(mount["name"], {}), objects)
                if files is None:
                    problems.append(
                        f"{where}: {name}={path}: volume {mount['name']} takes an object these manifests do not hold"
                    )
                elif relative not in files:
                    problems.append(
                        f"{where}: {name}={path}, but volume {mount['name']} has no key {relative!r} "
                        f"(it has: {', '.join(sorted(files)) or 'nothing'}); the service would stop at startup"
                    )
    for problem in problems:
        print(f"ERROR {label}: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{label}: {checked} *_FILE settings point at mounted keys")


if __name__ == "__main__":
    main()
