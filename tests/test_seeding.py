"""condense.seeding: the stream formulas are pinned bit for bit to the constants published sets were made with."""
import pytest
import torch

from condense.errors import CondenseError
from condense.seeding import STREAMS, generator, int31, seed_for

M62 = 2**62
PAIRS = [(0, 0), (0, 1), (1, 0), (7, 3), (123_456, 999), (2**40 + 5, 17), (3, -1), (3, -2), (0, -1), (-5, 4),
         (2**61, 2**20)]

# The formulas written out by hand (not read from STREAMS), so a changed constant fails here.
EXPECTED = {
    "iteration": lambda s, i: (s * 1_000_003 + i * 7_919 + 12_345) % M62,
    "expert": lambda s, i: (s * 1_000_003 + i * 104_729 + 77) % M62,
    "eval_run": lambda s, i: s * 1000 + i,
    "audit": lambda s, i: s * 7919 + i,
    "shadow_set": lambda s, i: s * 100_003 + i + 10_000,
    "shadow_random": lambda s, i: s * 100_003 + i + 30_000,
    "shadow_model": lambda s, i: s * 100_003 + i + 20_000,
    "lr_grid": lambda s, i: (s * 1_000_003 + i * 67_867_967 + 19) % M62,
    "ior_random": lambda s, i: (s * 1_000_003 + i * 49_979_687 + 11) % M62,
    "pool_net": lambda s, i: (s * 1_000_003 + i * 15_485_863 + 31) % M62,
    "pool_train": lambda s, i: (s * 1_000_003 + i * 32_452_843 + 53) % M62,
    "ssl": lambda s, i: (s * 1_000_003 + i * 104_395_301 + 83) % M62,
    "transfer_labels": lambda s, i: (s * 1_000_003 + i * 122_949_823 + 89) % M62,
    "transfer_random": lambda s, i: (s * 1_000_003 + i * 141_650_963 + 97) % M62,
    "teacher": lambda s, i: (s * 1_000_003 + i * 86_028_121 + 71) % M62,
    "mae": lambda s, i: (s * 1_000_003 + i * 179_424_673 + 101) % M62,
    "embedding_net": lambda s, i: (s * 1_000_003 + i * 217_645_177 + 103) % M62,
    "bin_greedy": lambda s, i: (s * 1_000_003 + i * 236_887_691 + 107) % M62,
    "bin_sample": lambda s, i: (s * 1_000_003 + i * 256_203_161 + 109) % M62,
}


def test_every_stream_is_pinned_here():
    assert sorted(STREAMS) == sorted(EXPECTED)


@pytest.mark.parametrize("stream", sorted(EXPECTED))
@pytest.mark.parametrize("seed, index", PAIRS)
def test_stream_formula(stream, seed, index):
    assert seed_for(stream, seed, index) == EXPECTED[stream](seed, index)


def test_literal_values():
    # a few values spelled out, including the initial set (-1) and a coreset's feature net (-2)
    assert seed_for("iteration", 0, 0) == 12_345
    assert seed_for("iteration", 3, -1) == 3 * 1_000_003 - 7_919 + 12_345 == 3_004_435
    assert seed_for("iteration", 0, -2) == M62 - 3_493  # reduced into [0, 2**62), never negative
    assert seed_for("expert", 1, 2) == 1_000_003 + 209_458 + 77 == 1_209_538
    assert seed_for("eval_run", 4, 2) == 4_002
    assert seed_for("audit", 2, 1) == 15_839
    assert seed_for("shadow_set", 1, 0) == 110_003
    assert seed_for("shadow_model", 1, 5) == 120_008
    assert seed_for("shadow_random", 0, 1) == 30_001
    assert seed_for("eval_run", 5) == 5_000  # index defaults to 0


def test_modular_streams_stay_in_range_for_huge_seeds():
    for stream in ("iteration", "expert"):
        for seed, index in PAIRS + [(2**70, -(2**65))]:
            v = seed_for(stream, seed, index)
            assert 0 <= v < M62 and isinstance(v, int)
            torch.Generator().manual_seed(v)  # a valid torch seed


@pytest.mark.parametrize("stream, seed, index", [("iteration", 3, 7), ("iteration", 0, -1), ("expert", 2, 4),
                                                 ("eval_run", 1, 2), ("shadow_model", 0, 3)])
def test_generator_gives_the_draws_of_a_manually_seeded_one(stream, seed, index):
    g = generator(stream, seed, index)
    assert g.device == torch.device("cpu") and g.initial_seed() == seed_for(stream, seed, index)
    ref = torch.Generator().manual_seed(seed_for(stream, seed, index))
    assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=ref))
    assert torch.equal(torch.randperm(20, generator=g), torch.randperm(20, generator=ref))
    other = generator(stream, seed, index + 1)
    assert not torch.equal(torch.randn(5, generator=generator(stream, seed, index)), torch.randn(5, generator=other))


def test_an_unknown_stream_is_one_sentence_listing_the_streams():
    for call in (lambda: seed_for("iterations", 0, 0), lambda: generator("nope", 1)):
        with pytest.raises(CondenseError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and msg.endswith(".") and "Unknown random stream" in msg
        for name in EXPECTED:
            assert name in msg


def test_int31_range():
    for seed in (0, 1, 2**31 - 1, 2**31, 2**31 + 5, 2**62 - 1, -1, -(2**40)):
        v = int31(seed)
        assert 0 <= v < 2**31 and v == seed % 2**31
    assert int31(2**31 + 5) == 5 and int31(-1) == 2**31 - 1 and int31(12_345) == 12_345
