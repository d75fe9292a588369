"""Per-destination slots of the alert deliverer (consumers/alert/destinations.py)."""

from __future__ import annotations

import pytest

from consumers.alert.destinations import Slots, destination_of, webhook_destination


@pytest.mark.parametrize(("url", "destination"), [
    ("http://Hooks.Example.org/a", "webhook:http://hooks.example.org:80"),
    ("https://hooks.example.org/b?x=1", "webhook:https://hooks.example.org:443"),
    ("http://127.0.0.1:8080/hook", "webhook:http://127.0.0.1:8080"),
])
def test_a_webhook_destination_is_scheme_host_and_port(url: str, destination: str) -> None:
    assert webhook_destination(url) == destination


def test_a_channel_without_a_destination_is_its_own() -> None:
    class Terminal:
        name = "screen"

    assert destination_of(Terminal()) == "channel:screen"


def test_one_slot_per_destination_and_no_more_than_the_workers() -> None:
    slots = Slots(per_destination=1, total=2)
    assert slots.take("slow")
    assert not slots.take("slow"), "a second send to a busy host"
    assert slots.full() == {"slow"}
    assert slots.take("fast")
    assert not slots.take("mail"), "more sends than workers"
    slots.give("slow")
    assert slots.full() == {"fast"}
    assert slots.take("mail")
    assert slots.in_flight() == 2
    assert slots.free() == 0
