"""`output`, `log`, `config`, `secrets` and `state` over the stub bindings and a fake host."""

import unittest

from .support import FakeHost, wit_log, wit_output, wit_state

from apiary_sdk import config, log, output, secrets, state


class OutputTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_emit_sends_compact_json_in_key_order(self):
        output.emit({"b": 1, "a": ["é", None, True, 1.5]})
        self.assertEqual(self.host.records, ['{"b":1,"a":["é",null,true,1.5]}'])

    def test_emit_json_sends_the_text_as_given(self):
        output.emit_json('{"b": 1.0, "a": 2}')
        self.assertEqual(self.host.records, ['{"b": 1.0, "a": 2}'])

    def test_a_record_that_cannot_be_serialized_is_not_sent(self):
        for record in ({"x": object()}, float("inf")):
            with self.subTest(record), self.assertRaises(output.InvalidJson):
                output.emit(record)
        self.assertEqual(self.host.emit_calls, [])

    def test_the_hosts_refusals(self):
        self.host.refuse = (0, wit_output.Error_TooLarge(10))
        with self.assertRaises(output.TooLarge) as raised:
            output.emit({})
        self.assertEqual((raised.exception.limit, str(raised.exception)), (10, "record exceeds the host's limit of 10 bytes"))
        self.assertIsNone(raised.exception.index)
        self.host.refuse = (0, wit_output.Error_InvalidJson("line 1 column 2"))
        with self.assertRaises(output.InvalidJson) as raised:
            output.emit_json("{")
        self.assertEqual(str(raised.exception), "record is not valid JSON: line 1 column 2")

    def test_emit_all_sends_as_few_calls_as_the_host_allows(self):
        self.assertEqual(output.RECORDS_PER_CALL, 4096)
        output.emit_all({"n": n} for n in range(5000))
        self.assertEqual([len(call) for call in self.host.emit_calls], [4096, 904])
        self.assertEqual(self.host.records[4097], '{"n":4097}')
        output.emit_all([])
        self.assertEqual(len(self.host.emit_calls), 2)

    def test_emit_all_reports_the_position_of_a_refused_record(self):
        self.host.refuse = (4099, wit_output.Error_TooLarge(5))
        with self.assertRaises(output.TooLarge) as raised:
            output.emit_all([{"n": n} for n in range(5000)])
        self.assertEqual(raised.exception.index, 4099)
        self.assertEqual(len(self.host.records), 4099)

    def test_emit_all_stops_at_a_record_that_cannot_be_serialized(self):
        with self.assertRaises(output.InvalidJson) as raised:
            output.emit_all([{"n": 0}, {"n": 1}, {"n": object()}, {"n": 3}])
        self.assertEqual(raised.exception.index, 2)
        self.assertEqual(self.host.records, ['{"n":0}', '{"n":1}'])


class LogTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_each_level_maps_onto_the_generated_enum(self):
        for function, level in ((log.trace, "TRACE"), (log.debug, "DEBUG"), (log.info, "INFO"), (log.warn, "WARN"),
                                (log.error, "ERROR")):
            function(level.lower())
        self.assertEqual([(level, message) for level, message, _ in self.host.logs], [
            (wit_log.Level.TRACE, "trace"),
            (wit_log.Level.DEBUG, "debug"),
            (wit_log.Level.INFO, "info"),
            (wit_log.Level.WARN, "warn"),
            (wit_log.Level.ERROR, "error"),
        ])

    def test_fields_are_pairs_of_text_in_order(self):
        log.info("fetched page", {"page": 2}, items=100, done=True)
        log.warn("pairs", [("a", None)])
        self.assertEqual(self.host.logs, [
            (wit_log.Level.INFO, "fetched page", [("page", "2"), ("items", "100"), ("done", "True")]),
            (wit_log.Level.WARN, "pairs", [("a", "None")]),
        ])


class ConfigAndSecretsTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)
        self.host.config.update({"b": "2", "a": "1", "empty": ""})

    def test_config(self):
        self.assertEqual(config.get("a"), "1")
        self.assertEqual(config.get("empty", "default"), "")
        self.assertEqual(config.get("absent", "default"), "default")
        self.assertIsNone(config.get("absent"))
        self.assertEqual(config.require("b"), "2")
        self.assertEqual(config.all(), [("a", "1"), ("b", "2"), ("empty", "")])

    def test_secrets_available(self):
        self.host.secrets.add("tok")
        self.assertIs(secrets.available("tok"), True)
        self.assertIs(secrets.available("other"), False)


class StateTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_text_and_json_round_trip(self):
        self.assertIsNone(state.get("since"))
        state.put("raw", "x")
        state.put_json("since", {"t": "é", "n": 1})
        self.assertEqual(self.host.state, {"raw": "x", "since": '{"t":"é","n":1}'})
        self.assertEqual(state.get_json("since"), {"t": "é", "n": 1})
        self.assertEqual(state.get_json("absent", 5), 5)

    def test_json_errors(self):
        self.host.state["bad"] = "{"
        with self.assertRaises(state.JsonError):
            state.get_json("bad")
        with self.assertRaises(state.JsonError):
            state.put_json("nan", float("nan"))
        self.assertNotIn("nan", self.host.state)

    def test_the_hosts_errors(self):
        self.host.state_error = wit_state.Error_TooLarge(3)
        with self.assertRaises(state.TooLarge) as raised:
            state.put("k", "long")
        self.assertEqual((raised.exception.limit, str(raised.exception)), (3, "state value exceeds the host's limit of 3 bytes"))
        self.host.state_error = wit_state.Error_Storage("disk full")
        with self.assertRaises(state.Storage) as raised:
            state.get("k")
        self.assertEqual(str(raised.exception), "state storage failed: disk full")


if __name__ == "__main__":
    unittest.main()
