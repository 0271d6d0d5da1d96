"""The memories behind the RTL bench's ports (hw/tb/memory_models.py): the nominal timing of
docs/MACHINE_V3.md exactly, and a stalled mode that is slower, never faster, and changes no data."""

import numpy as np

from bebert.hw.tb.memory_models import DramImage, InstructionMemory, ReadPortModel, WritePortModel

B, L = 8, 5


def image(n=512, seed=0):
    return DramImage(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8), B)


def beats_of(port: ReadPortModel, cycles: int) -> list[tuple[int, int]]:
    return [(t, v) for t in range(cycles) if (v := port.beat(t)) is not None]


def test_a_burst_returns_beat_j_in_r_plus_l_plus_j():
    d = image()
    port = ReadPortModel(d, L)
    port.request(3, 64, 4)
    got = beats_of(port, 40)
    assert got == [(3 + L + j, d.get(64 + 8 * j)) for j in range(4)]
    assert port.idle


def test_outstanding_bursts_come_in_order_one_beat_per_cycle():
    d = image()
    port = ReadPortModel(d, L)
    port.request(0, 0, 3)
    port.request(1, 128, 2)  # taken while the first is outstanding
    port.request(20, 256, 1)  # far apart: its own latency
    got = beats_of(port, 60)
    assert [t for t, _ in got] == [L, L + 1, L + 2, L + 3, L + 4, 20 + L]
    assert [v for _, v in got] == [d.get(a) for a in (0, 8, 16, 128, 136, 256)]


def test_writes_land_with_their_strobes_and_answer_in_order_after_l():
    d = image()
    before = d.image()
    port = WritePortModel(d, L)
    port.write(2, 16, int.from_bytes(bytes(range(1, 9)), "little"), 0b10100101)
    port.write(3, 32, 0, 0xFF)
    want = before.copy()
    for i in (0, 2, 5, 7):
        want[16 + i] = i + 1
    want[32:40] = 0
    assert np.array_equal(d.image(), want)
    assert [t for t in range(20) if port.response(t)] == [2 + L, 3 + L] and port.idle


def test_stalls_are_slower_never_faster_and_move_the_same_bytes():
    reqs = [(0, 0, 6), (2, 200, 3)]
    nominal = ReadPortModel(image(), L)
    slow = ReadPortModel(image(), L, stall=0.4, seed=7)
    for p in (nominal, slow):
        for r in reqs:
            p.request(*r)
    fast, late = beats_of(nominal, 100), beats_of(slow, 100)
    assert [v for _, v in fast] == [v for _, v in late]
    assert all(b[0] >= a[0] for a, b in zip(fast, late)) and late != fast
    assert sum(ReadPortModel(image(), L, stall=0.4, seed=1).ready() for _ in range(200)) < 180
    w = WritePortModel(image(), L, stall=0.6, seed=3)
    for t in range(10):
        w.write(t, 8 * t, t, 0xFF)
    resp = [t for t in range(100) if w.response(t)]
    assert len(resp) == 10 and all(r >= t + L for t, r in enumerate(resp)) and resp != [t + L for t in range(10)]


def test_instruction_memory_answers_a_cycle_later_or_waits_when_slow():
    words = [11, 22, 33]
    imem = InstructionMemory(words)
    assert imem.step(0) == (0, 0)  # nothing presented before
    assert imem.step(1) == (11, 1) and imem.step(1) == (22, 1) and imem.step(7) == (22, 1)
    assert imem.step(7) == (0, 1)  # past the end: 0
    slow = InstructionMemory(words, stall=0.9, seed=0)
    slow.step(0)
    slow.step(1)  # a new address: its word comes 0..3 cycles late
    got = [slow.step(1) for _ in range(5)]
    assert got[0] == (0, 0) and got[-1] == (22, 1)
