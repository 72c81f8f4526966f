"""Endpointing on blank/non-blank frames with Riva's EndpointingConfig fields (20 ms frames)."""

import pytest

from speechtao.serve.endpointing import EndpointConfig, Endpointer


def events(cfg, frames):
    """frames: a string, '_' blank and 'x' token per frame -> [(frame index, event), ...]."""
    ep = Endpointer(cfg, frame_ms=20)
    out = []
    for i, c in enumerate(frames):
        e = ep.push(c == "_")
        if e:
            out.append((i, e))
            if e == "end":
                ep.reset()
    return out


CASES = [
    # name, config, frames, expected events
    (
        "start needs share of tokens",
        EndpointConfig(start_history=100, start_threshold=0.4),
        "_x___xx___",
        [(5, "start")],
    ),  # frames 1-5 hold 2 tokens in 5
    (
        "stop after silence",
        EndpointConfig(start_history=40, start_threshold=0.5, stop_history=100, stop_threshold=1.0),
        "xx" + "_" * 4 + "x" + "_" * 5 + "x",
        [(0, "start"), (11, "end"), (12, "start")],
    ),
    (
        "stop threshold below 1 tolerates a blip",
        EndpointConfig(start_history=20, start_threshold=1.0, stop_history=100, stop_threshold=0.8),
        "x___x___",
        [(0, "start"), (5, "end")],
    ),  # frames 1-5: 4 blanks of 5
    ("silence only never starts", EndpointConfig(), "_" * 100, []),
    (
        "eou before end",
        EndpointConfig(
            start_history=20,
            start_threshold=1.0,
            stop_history=200,
            stop_threshold=1.0,
            stop_history_eou=60,
            stop_threshold_eou=1.0,
        ),
        "xx" + "_" * 12,
        [(0, "start"), (4, "eou"), (11, "end")],
    ),
]


@pytest.mark.parametrize("name,cfg,frames,expected", CASES, ids=[c[0] for c in CASES])
def test_endpointer_events(name, cfg, frames, expected):
    assert events(cfg, frames) == expected


def test_from_proto_keeps_unset_and_zero_fields():
    riva = pytest.importorskip("riva.client.proto.riva_asr_pb2")
    base = EndpointConfig(stop_history=700)
    assert EndpointConfig.from_proto(riva.EndpointingConfig(), base) == base
    got = EndpointConfig.from_proto(
        riva.EndpointingConfig(stop_history=300, start_threshold=0.0, stop_threshold_eou=0.5), base
    )
    assert got == EndpointConfig(stop_history=300, stop_threshold_eou=0.5)  # 0 means "unset", as Riva's clients send
    with pytest.raises(ValueError, match="stop_threshold must be in"):
        EndpointConfig.from_proto(riva.EndpointingConfig(stop_threshold=1.5))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"stop_history": 0}, "stop_history must be > 0"),
        ({"start_threshold": 0.0}, "start_threshold must be in"),
        ({"start_history": 70_000}, "start_history must be in"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EndpointConfig(**kwargs)
