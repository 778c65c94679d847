"""`export` (the glue onto the WIT exports): describe, run, and the mapping of whatever `run`
raises onto the generated `run-error`; and `parse_input`'s serde-worded messages."""

from __future__ import annotations

import dataclasses
import unittest
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .support import Err, FakeHost, wit_http, wit_log, wit_types
from .test_http import HTTP_ERRORS

import apiary_sdk
from apiary_sdk import (
    Failed,
    InvalidInput,
    OperationInfo,
    PluginInfo,
    RunSummary,
    UnknownOperation,
    config,
    http,
    output,
    paginate,
    parse_input,
    secrets,
    state,
)


class Scripted(apiary_sdk.Plugin):
    """A plugin whose `run` returns or raises what the test put in `Scripted.outcome`."""

    outcome: Any = None
    instances = 0
    inputs: List[Any] = []

    def __init__(self):
        type(self).instances += 1

    def describe(self):
        return PluginInfo("demo", "0.1.0", [OperationInfo("list", "List items"), ("get", "Get one item")])

    def run(self, operation, input):
        Scripted.inputs.append((operation, input))
        outcome = Scripted.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome()
        return outcome


class ExportTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)
        Scripted.outcome, Scripted.instances, Scripted.inputs = None, 0, []
        self.world = apiary_sdk.export(Scripted)

    def run_error(self, outcome, input="{}"):
        """The generated run-error `run` raises when the plugin's run does `outcome`."""
        Scripted.outcome = outcome
        with self.assertRaises(Err) as raised:
            self.world().run("list", input)
        return raised.exception.value

    def test_the_class_is_named_for_componentize_py(self):
        self.assertEqual(self.world.__name__, "WitWorld")

    def test_describe_returns_the_generated_plugin_info(self):
        self.assertEqual(self.world().describe(), wit_types.PluginInfo(
            name="demo",
            version="0.1.0",
            operations=[wit_types.OperationInfo(name="list", summary="List items"),
                        wit_types.OperationInfo(name="get", summary="Get one item")],
        ))

    def test_run_parses_the_input_and_returns_the_generated_summary(self):
        Scripted.outcome = RunSummary(pages=3, message="done")
        self.assertEqual(self.world().run("list", '{"owner": "o", "n": [1, 2.5, null]}'),
                         wit_types.RunSummary(pages=3, message="done"))
        self.assertEqual(Scripted.inputs, [("list", {"owner": "o", "n": [1, 2.5, None]})])

    def test_no_summary_counts_as_zero_pages_and_no_message(self):
        Scripted.outcome = None
        self.assertEqual(self.world().run("list", "{}"), wit_types.RunSummary(pages=0, message=None))

    def test_the_plugin_is_instantiated_once(self):
        self.world().describe()
        self.world().run("list", "{}")
        self.world().run("list", "{}")
        self.assertEqual(Scripted.instances, 1)

    def test_an_instance_can_be_exported(self):
        plugin = Scripted()
        world = apiary_sdk.export(plugin)
        world().run("list", "{}")
        self.assertEqual(Scripted.instances, 1)

    def test_input_that_is_not_json_is_invalid_input(self):
        error = self.run_error(None, input="{owner")
        self.assertIsInstance(error, wit_types.RunError_InvalidInput)
        self.assertTrue(error.value.startswith("input is not valid JSON: "), error.value)
        self.assertEqual(Scripted.inputs, [])

    def test_each_run_error_becomes_its_own_case(self):
        cases = [
            (UnknownOperation("nope"), wit_types.RunError_UnknownOperation("nope")),
            (InvalidInput("invalid input: missing field `owner`"),
             wit_types.RunError_InvalidInput("invalid input: missing field `owner`")),
            (Failed("upstream said no"), wit_types.RunError_Failed("upstream said no")),
            (apiary_sdk.json_failed(ValueError("Expecting value")),
             wit_types.RunError_Failed("unexpected JSON in a response: Expecting value")),
        ]
        for raised, expected in cases:
            with self.subTest(raised):
                self.assertEqual(self.run_error(raised), expected)
        self.assertEqual(str(UnknownOperation("nope")), "unknown operation `nope`")

    def test_the_default_run_is_an_unknown_operation(self):
        world = apiary_sdk.export(apiary_sdk.Plugin)
        with self.assertRaises(Err) as raised:
            world().run("anything", "{}")
        self.assertEqual(raised.exception.value, wit_types.RunError_UnknownOperation("anything"))

    def test_each_http_error_case_becomes_the_http_case_with_the_same_wire_error(self):
        for wire_error, *_ in HTTP_ERRORS:
            with self.subTest(wire_error):
                self.assertEqual(self.run_error(http.Error.from_wire(wire_error)), wit_types.RunError_Http(wire_error))

    def test_an_http_error_with_no_wit_case_is_failed_with_its_message(self):
        # The base class, or a plugin's own subclass: before the fix, `to_wire` raised out of the
        # mapping and crashed the component (a wasm trap) instead of failing the run.
        class NotFound(http.Error):
            pass

        self.assertEqual(self.run_error(http.Error("boom")), wit_types.RunError_Failed("boom"))
        self.assertEqual(self.run_error(NotFound("no such repo")), wit_types.RunError_Failed("no such repo"))
        self.assertEqual(self.run_error(NotFound()), wit_types.RunError_Failed("NotFound"))

    def test_sdk_errors_become_failed_with_their_message(self):
        cases = [
            paginate.LoopDetected("c1"),
            paginate.TooManyPages(3),
            paginate.UnexpectedStatus(http.Response("https://a.example/", 503)),
            output.TooLarge(10),
            output.InvalidJson("line 1"),
            state.Storage("disk full"),
            state.JsonError("bad"),
            secrets.Unknown("tok"),
        ]
        for raised in cases:
            with self.subTest(raised):
                self.assertEqual(self.run_error(raised), wit_types.RunError_Failed(str(raised)))
        self.assertEqual(str(cases[2]), "unexpected status 503 from https://a.example/")
        self.assertEqual(self.host.logs, [])

    def test_a_missing_config_value_is_invalid_input(self):
        Scripted.outcome = lambda: config.require("org")
        error = self.run_error(Scripted.outcome)
        self.assertEqual(error, wit_types.RunError_InvalidInput("config value `org` is required but not set"))

    def test_an_uncaught_exception_is_failed_with_its_type_and_message_and_is_logged(self):
        self.assertEqual(self.run_error(ValueError("bad\n   value")), wit_types.RunError_Failed("ValueError: bad value"))
        ((level, message, fields),) = self.host.logs
        self.assertEqual((level, message), (wit_log.Level.ERROR, "uncaught exception in run"))
        self.assertEqual([name for name, _ in fields], ["traceback"])
        self.assertIn("Traceback (most recent call last)", fields[0][1])
        self.assertIn("ValueError: bad", fields[0][1])

    def test_an_uncaught_exception_without_a_message_is_its_type(self):
        self.assertEqual(self.run_error(RuntimeError()), wit_types.RunError_Failed("RuntimeError"))
        self.assertEqual(self.run_error(KeyError("k")), wit_types.RunError_Failed("KeyError: 'k'"))

    def test_a_failing_log_does_not_hide_the_error(self):
        self.host.log_fails = True
        self.assertEqual(self.run_error(ZeroDivisionError("division by zero")),
                         wit_types.RunError_Failed("ZeroDivisionError: division by zero"))

    def test_the_raised_err_is_the_generated_result_wrapper(self):
        # The component runtime turns exactly `componentize_py_types.Err` into `result::err`.
        Scripted.outcome = Failed("x")
        with self.assertRaises(Err) as raised:
            self.world().run("list", "{}")
        self.assertIs(type(raised.exception), Err)
        self.assertIs(apiary_sdk._bindings.Err, Err)


# --- parse_input --------------------------------------------------------------------------------


@dataclass
class Args:
    owner: str
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    label: Optional[str] = None
    ids: List[int] = field(default_factory=list)
    extra: Dict[str, int] = field(default_factory=dict)
    anything: Any = None
    maybe: int | None = None


@dataclass
class NoFields:
    pass


@dataclass
class OneField:
    a: str


@dataclass
class TwoFields:
    a: str
    b: str


ALL_ARGS = "`owner`, `count`, `ratio`, `flag`, `label`, `ids`, `extra`, `anything`, `maybe`"


class ParseInputTests(unittest.TestCase):
    def message(self, input, cls=Args):
        with self.assertRaises(InvalidInput) as raised:
            parse_input(input, cls)
        self.assertEqual(raised.exception.message, str(raised.exception))
        return str(raised.exception)

    def test_defaults_fill_absent_fields(self):
        self.assertEqual(parse_input({"owner": "o"}, Args), Args(owner="o"))
        parsed = parse_input({"owner": "o", "count": 3, "ratio": 2, "flag": True, "label": None, "ids": [1, 2],
                              "extra": {"a": 1}, "anything": [{"x": None}], "maybe": None}, Args)
        self.assertEqual(dataclasses.astuple(parsed), ("o", 3, 2, True, None, [1, 2], {"a": 1}, [{"x": None}], None))

    def test_missing_and_unknown_fields(self):
        self.assertEqual(self.message({}), "invalid input: missing field `owner`")
        self.assertEqual(self.message({"owner": "o", "x": 1}), f"invalid input: unknown field `x`, expected one of {ALL_ARGS}")
        # The input's keys are checked first, in order, as serde reads them.
        self.assertEqual(self.message({"x": 1}), f"invalid input: unknown field `x`, expected one of {ALL_ARGS}")
        self.assertEqual(self.message({"count": "2", "x": 1}), 'invalid input: invalid type: string "2", expected an integer')

    def test_the_expected_fields_are_worded_like_serde(self):
        self.assertEqual(self.message({"x": 1}, NoFields), "invalid input: unknown field `x`, there are no fields")
        self.assertEqual(self.message({"x": 1}, OneField), "invalid input: unknown field `x`, expected `a`")
        self.assertEqual(self.message({"x": 1}, TwoFields), "invalid input: unknown field `x`, expected `a` or `b`")

    def test_each_json_value_of_the_wrong_type_is_worded_like_serde(self):
        cases = [
            (None, "null"),
            (True, "boolean `true`"),
            (False, "boolean `false`"),
            (5, "integer `5`"),
            (1.5, "floating point `1.5`"),
            ([1], "sequence"),
            ({"a": 1}, "map"),
        ]
        for value, wording in cases:
            with self.subTest(value):
                self.assertEqual(self.message({"owner": value}), f"invalid input: invalid type: {wording}, expected a string")
        self.assertEqual(self.message({"owner": "o", "count": 'é"'}),
                         'invalid input: invalid type: string "é\\"", expected an integer')

    def test_each_field_type_is_checked(self):
        cases = [
            ({"count": True}, "boolean `true`, expected an integer"),
            ({"count": 1.5}, "floating point `1.5`, expected an integer"),
            ({"ratio": False}, "boolean `false`, expected a number"),
            ({"ratio": "1"}, 'string "1", expected a number'),
            ({"flag": 1}, "integer `1`, expected a boolean"),
            ({"label": 3}, "integer `3`, expected a string"),
            ({"ids": {}}, "map, expected a sequence"),
            ({"ids": [1, "2"]}, 'string "2", expected an integer'),
            ({"extra": []}, "sequence, expected a map"),
            ({"extra": {"a": "b"}}, 'string "b", expected an integer'),
            ({"maybe": "x"}, 'string "x", expected an integer'),
        ]
        for fields, wording in cases:
            with self.subTest(fields):
                self.assertEqual(self.message({"owner": "o", **fields}), f"invalid input: invalid type: {wording}")

    def test_input_that_is_not_an_object(self):
        self.assertEqual(self.message([1]), "invalid input: invalid type: sequence, expected struct Args")
        self.assertEqual(self.message("s"), 'invalid input: invalid type: string "s", expected struct Args')
        self.assertEqual(self.message(None), "invalid input: invalid type: null, expected struct Args")

    def test_only_dataclasses(self):
        with self.assertRaises(TypeError):
            parse_input({}, dict)
        with self.assertRaises(TypeError):
            parse_input({}, Args(owner="o"))


if __name__ == "__main__":
    unittest.main()
