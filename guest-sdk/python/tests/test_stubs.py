"""The stub bindings stay what componentize-py generates from `wit/`, and the SDK still works
where there are no bindings at all (plain CPython, no host)."""

import dataclasses
import enum
import json
import os
import re
import subprocess
import sys
import tempfile
import typing
import unittest

from . import SDK, STUBS
from .support import WIT

import wit_world

COMPONENTIZE_PY_VERSION = "0.25.1"
"""The componentize-py release `apiary build` pins (host/src/authoring/toolchain.rs)."""


# --- a reader of the WIT declarations the bindings are generated from ----------------------------


def _block(text, start):
    """The text between the `{` at or after `start` and its matching `}`, and the end index."""
    open_at = text.index("{", start)
    depth = 0
    for at in range(open_at, len(text)):
        if text[at] == "{":
            depth += 1
        elif text[at] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : at], at + 1
    raise ValueError("unbalanced braces in WIT")


def _items(body):
    """`body` split at commas outside `<>` and `()`, stripped, empty items dropped."""
    items, depth, current = [], 0, []
    for char in body:
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


def _snake(name):
    return name.replace("-", "_")


def read_wit(directory):
    """{interface: {"record": {Name: [fields]}, "variant": {Name: [(Case, has_payload)]},
    "enum": {Name: [MEMBERS]}, "resource": {Name: [methods]}, "func": [names]}} and the `plugin`
    world's exports, with names spelled as componentize-py spells them."""
    interfaces, exports = {}, None
    for file_name in sorted(os.listdir(directory)):
        if not file_name.endswith(".wit"):
            continue
        with open(os.path.join(directory, file_name), encoding="utf-8") as file:
            text = re.sub(r"//[^\n]*", "", file.read())
        for match in re.finditer(r"\b(interface|world)\s+([a-z][a-z0-9-]*)\s*\{", text):
            body, _ = _block(text, match.end() - 1)
            if match.group(1) == "world":
                if match.group(2) == "plugin":
                    exports = [_snake(name) for name in re.findall(r"\bexport\s+([a-z][a-z0-9-]*)\s*:\s*func\b", body)]
                continue
            found = {"record": {}, "variant": {}, "enum": {}, "resource": {}, "func": []}
            rest, at = [], 0
            for item in re.finditer(r"\b(record|variant|enum|flags|resource)\s+([a-z][a-z0-9-]*)\s*\{", body):
                if item.start() < at:
                    continue
                rest.append(body[at : item.start()])
                inner, at = _block(body, item.end() - 1)
                kind, name = item.group(1), _camel(item.group(2))
                if kind == "record":
                    found["record"][name] = [_snake(entry.split(":", 1)[0].strip()) for entry in _items(inner)]
                elif kind == "variant":
                    found["variant"][name] = [(_camel(entry.split("(", 1)[0].strip()), "(" in entry)
                                              for entry in _items(inner)]
                elif kind == "enum":
                    found["enum"][name] = [_snake(entry).upper() for entry in _items(inner)]
                elif kind == "resource":
                    methods = [_snake(m) for m in re.findall(r"\b([a-z][a-z0-9-]*)\s*:\s*func\b", inner)]
                    if re.search(r"\bconstructor\s*\(", inner):
                        methods.append("__init__")
                    found["resource"][name] = methods
                else:
                    raise AssertionError(f"the stubs test does not know WIT `{kind}` yet ({name})")
            rest.append(body[at:])
            found["func"] = [_snake(name) for name in re.findall(r"\b([a-z][a-z0-9-]*)\s*:\s*func\b", "".join(rest))]
            interfaces[match.group(2)] = found
    return interfaces, exports


class StubShapeTests(unittest.TestCase):
    """The stubs declare what `wit/` declares, as componentize-py names it."""

    @classmethod
    def setUpClass(cls):
        cls.interfaces, cls.exports = read_wit(WIT)

    def module(self, interface):
        return __import__(f"wit_world.imports.{interface}", fromlist=["_"])

    def test_one_module_per_interface(self):
        modules = {name[:-3] for name in os.listdir(os.path.join(STUBS, "wit_world", "imports"))
                   if name.endswith(".py") and name != "__init__.py"}
        self.assertEqual(modules, set(self.interfaces))
        self.assertEqual(modules, {"config", "http", "log", "output", "ratelimit", "secrets", "state", "types"})

    def test_the_world_exports(self):
        self.assertEqual(self.exports, ["describe", "run"])
        for name in self.exports:
            self.assertTrue(callable(getattr(wit_world.WitWorld, name, None)), name)

    def test_records_variants_enums_resources_and_functions(self):
        for interface, found in self.interfaces.items():
            module = self.module(interface)
            expected_classes = set(found["record"]) | set(found["enum"]) | set(found["resource"])
            for name, fields in found["record"].items():
                with self.subTest(f"{interface}.{name}"):
                    cls = getattr(module, name)
                    self.assertEqual([f.name for f in dataclasses.fields(cls)], fields)
            for name, cases in found["variant"].items():
                with self.subTest(f"{interface}.{name}"):
                    classes = [getattr(module, f"{name}_{case}") for case, _ in cases]
                    self.assertEqual(typing.get_args(getattr(module, name)), tuple(classes))
                    for cls, (case, payload) in zip(classes, cases):
                        self.assertEqual([f.name for f in dataclasses.fields(cls)], ["value"] if payload else [], case)
                    expected_classes |= {cls.__name__ for cls in classes}
            for name, members in found["enum"].items():
                with self.subTest(f"{interface}.{name}"):
                    cls = getattr(module, name)
                    self.assertTrue(issubclass(cls, enum.Enum))
                    self.assertEqual([member.name for member in cls], members)
                    self.assertEqual([member.value for member in cls], list(range(len(members))))
            for name, methods in found["resource"].items():
                with self.subTest(f"{interface}.{name}"):
                    cls = getattr(module, name)
                    for method in methods:
                        self.assertIn(method, vars(cls), method)
            for name in found["func"]:
                with self.subTest(f"{interface}.{name}"):
                    self.assertTrue(callable(getattr(module, name, None)), name)
            with self.subTest(f"{interface}: no class the WIT does not declare"):
                defined = {name for name, value in vars(module).items()
                           if isinstance(value, type) and value.__module__ == module.__name__}
                self.assertEqual(defined, expected_classes)

    def test_the_reader_sees_the_contract(self):
        # Guards the reader itself: a WIT reformat it cannot follow must fail here, not pass vacuously.
        http = self.interfaces["http"]
        self.assertEqual([case for case, _ in http["variant"]["Error"]],
                         ["Denied", "InvalidRequest", "Timeout", "RateLimited", "RetriesExhausted", "BodyTooLarge",
                          "Connection", "Secret"])
        self.assertEqual(http["record"]["Request"], ["method", "url", "headers", "body", "secrets", "options"])
        self.assertEqual(http["func"], ["send", "send_batch"])
        self.assertEqual(http["resource"], {"Batch": ["next", "__init__"]})
        self.assertEqual(self.interfaces["log"]["enum"], {"Level": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]})
        self.assertEqual(self.interfaces["ratelimit"]["record"], {"BucketState": ["remaining", "wait_ms"]})
        self.assertEqual(self.interfaces["ratelimit"]["func"], ["state", "wait"])


def _componentize_py():
    """The command running componentize-py 0.25.1, or (None, why not)."""
    explicit = os.environ.get("APIARY_COMPONENTIZE_PY")
    if explicit:
        candidates = [explicit]
    else:
        tools = os.environ.get("APIARY_TOOLS_DIR")
        if not tools:
            cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            if sys.platform == "darwin":
                cache = os.path.join(os.path.expanduser("~"), "Library", "Caches")
            tools = os.path.join(cache, "apiary", "tools")
        candidates = [os.path.join(tools, f"componentize-py-{COMPONENTIZE_PY_VERSION}", "bin", "componentize-py")]
    for script in candidates:
        if not os.path.isfile(script):
            continue
        # Through the environment's interpreter, as `apiary build` runs it: the script's `#!`
        # line may name the directory the tool was installed in before it was moved.
        python = os.path.join(os.path.dirname(script), "python")
        command = [python, script] if os.path.isfile(python) else [script]
        version = subprocess.run(command + ["--version"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.split()[-1:] == [COMPONENTIZE_PY_VERSION]:
            return command, None
        return None, f"{script} is not componentize-py {COMPONENTIZE_PY_VERSION}: {version.stdout or version.stderr}"
    return None, f"componentize-py {COMPONENTIZE_PY_VERSION} is not installed (looked for {candidates})"


class RegeneratedStubTests(unittest.TestCase):
    def test_the_stubs_are_byte_for_byte_what_componentize_py_generates(self):
        command, why_not = _componentize_py()
        if command is None:
            if os.environ.get("APIARY_COMPONENTIZE_PY"):
                self.fail(why_not)
            self.skipTest(why_not)
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(command + ["-d", WIT, "-w", "plugin", "bindings", out], check=True, capture_output=True)
            generated = {os.path.relpath(os.path.join(root, name), out)
                         for root, _, names in os.walk(os.path.join(out, "wit_world")) for name in names
                         if name.endswith(".py")}
            stubs = {os.path.relpath(os.path.join(root, name), STUBS)
                     for root, _, names in os.walk(os.path.join(STUBS, "wit_world")) for name in names
                     if name.endswith(".py")}
            self.assertEqual(stubs, generated)
            for path in sorted(generated) + ["componentize_py_types.py"]:
                with self.subTest(path):
                    with open(os.path.join(out, path), "rb") as fresh, open(os.path.join(STUBS, path), "rb") as stub:
                        self.assertEqual(stub.read(), fresh.read(), f"{path} differs: regenerate (stubs/README.md)")


NO_HOST = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import apiary_sdk
from apiary_sdk import _bindings, config, http, ratelimit
from apiary_sdk.http import Response
from apiary_sdk.paginate import LinkPages

out = {"in_component": _bindings.IN_COMPONENT}
for name, call in (("config", lambda: config.get("x")), ("send", lambda: http.get("https://a.example/").send()),
                   ("ratelimit", lambda: ratelimit.wait("a.example"))):
    try:
        call()
        out[name] = None
    except apiary_sdk.HostUnavailable as error:
        out[name] = str(error)
pages = LinkPages(http.get("https://api.example.com/a"), send=lambda request: Response(request.url(), 200, [], b"[]"))
out["pages"] = [page.json() for page in pages]
out["url"] = http.get("https://api.example.com/s").query("q", "a b").url()
print(json.dumps(out))
"""


class NoHostTests(unittest.TestCase):
    def test_outside_a_component_host_calls_raise_and_pure_logic_runs(self):
        # A fresh interpreter without the stubs: the SDK's own fallback, as README's "Testing
        # without a host" describes.
        done = subprocess.run([sys.executable, "-I", "-c", NO_HOST, SDK], capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertIs(out["in_component"], False)
        self.assertEqual(out["config"], "apiary_sdk: `config.get` is a host import, only available inside a component "
                                        "built with componentize-py")
        self.assertIsNotNone(out["send"])
        self.assertIn("`http.", out["send"])
        self.assertEqual(out["ratelimit"], "apiary_sdk: `ratelimit.wait` is a host import, only available inside a "
                                           "component built with componentize-py")
        self.assertEqual(out["pages"], [[]])
        self.assertEqual(out["url"], "https://api.example.com/s?q=a+b")


if __name__ == "__main__":
    unittest.main()
