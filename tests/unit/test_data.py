"""Storage, segment sampling, normalisation and the recent-history window."""

import numpy as np
import pytest
import torch

from learn2adapt.data.recent_history import RecentHistory
from learn2adapt.data.segment_sampler import SegmentSampler, valid_segment_starts
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer, split_episodes
from learn2adapt.models.normalizer import Normalizer


def make_buffer(lengths, obs_dim=3, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    buf = TrajectoryBuffer(obs_dim, act_dim, capacity=4)  # tiny capacity: exercises growth
    for e, t in enumerate(lengths):
        obs = rng.normal(size=(t, obs_dim)).astype(np.float32)
        # encode (episode, step) in obs[:, 0] so tests can tell where a row came from
        obs[:, 0] = 1000 * e + np.arange(t)
        act = rng.uniform(-1, 1, (t, act_dim)).astype(np.float32)
        tasks = [{"mass": float(e), "switch": int(s >= t // 2)} for s in range(t)]
        buf.add_episode(Episode(obs, act, obs + 1, rng.normal(size=t).astype(np.float32), np.arange(t) == t - 1, tasks))
    return buf


def test_storage_keeps_episode_boundaries_and_tasks(tmp_path):
    lengths = [5, 12, 1, 7]
    buf = make_buffer(lengths)
    assert len(buf) == sum(lengths) and buf.num_episodes == 4
    slices = buf.episode_slices()
    assert [s.stop - s.start for s in slices] == lengths
    for e, s in enumerate(slices):
        assert (buf.episode_id[s] == e).all()
        assert (buf.step[s] == np.arange(lengths[e])).all()
        # the task in force is kept per step, including a mid-episode switch
        tasks = [buf.task_at(i) for i in range(s.start, s.stop)]
        assert tasks[0] == {"mass": float(e), "switch": int(lengths[e] // 2 == 0)}
        assert tasks[-1]["switch"] == 1
    path = tmp_path / "buf.npz"
    buf.save(path)
    again = TrajectoryBuffer.load(path)
    assert again.num_episodes == 4 and again.tasks == buf.tasks
    np.testing.assert_array_equal(again.obs, buf.obs)
    np.testing.assert_array_equal(again.episode_id, buf.episode_id)
    again.add_episode(
        Episode(*(x[:3] for x in (buf.obs, buf.act, buf.next_obs, buf.reward, buf.terminated)), [{"mass": 9.0}] * 3)
    )
    assert again.num_episodes == 5 and again.task_at(len(again) - 1) == {"mass": 9.0}


def test_episode_with_wrong_task_count_is_refused():
    buf = TrajectoryBuffer(1, 1)
    z = np.zeros((3, 1), np.float32)
    with pytest.raises(ValueError, match="tasks"):
        buf.add_episode(Episode(z, z, z, np.zeros(3, np.float32), np.zeros(3, bool), [{}]))


def test_segment_sampler_never_crosses_episodes_and_covers_all_starts():
    lengths = [5, 12, 1, 7, 8]
    buf = make_buffer(lengths)
    seg_len = 6
    starts = valid_segment_starts(buf.episode_id, seg_len)
    expected = [sl.start + i for sl, t in zip(buf.episode_slices(), lengths) for i in range(t - seg_len + 1)]
    assert sorted(starts.tolist()) == expected
    sampler = SegmentSampler(buf, seg_len)
    rng = np.random.default_rng(1)
    batch = sampler.gather(rng.choice(sampler.starts, size=500))
    assert isinstance(batch.obs, torch.Tensor) and batch.count is None
    assert batch.obs.shape == (500, seg_len, 3)
    assert batch.act.shape == (500, seg_len, 2) and batch.next_obs.shape == (500, seg_len, 3)
    code = batch.obs[..., 0].numpy()
    episode, step = code // 1000, code % 1000
    assert (episode == episode[:, :1]).all(), "a segment crossed an episode boundary"
    assert (np.diff(step, axis=1) == 1).all(), "segment transitions are not consecutive"
    # every valid start is reachable: an epoch visits each exactly once
    seen = np.concatenate([b.obs[:, 0, 0].numpy() for b in sampler.epoch(sampler.starts, 4, rng)])
    assert sorted(seen.tolist()) == sorted(buf.obs[starts, 0].tolist())


def test_segment_sampler_rejects_too_short_episodes():
    with pytest.raises(ValueError, match="long enough"):
        SegmentSampler(make_buffer([3, 4]), 5)


def test_normalizer_round_trip_and_constant_dimensions():
    rng = np.random.default_rng(0)
    obs = rng.normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
    obs[:, 2] = 7.0  # constant dimension
    act = rng.uniform(-1, 1, size=(1000, 2)).astype(np.float32)
    nxt = obs + rng.normal(0, 0.1, size=obs.shape).astype(np.float32)
    nxt[:, 2] = 7.0
    norm = Normalizer(4, 2)
    norm.fit(obs, act, nxt)
    o = torch.as_tensor(obs)
    z = norm.norm_obs(o)
    assert torch.isfinite(z).all()
    assert torch.allclose(z[:, [0, 1, 3]].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z[:, [0, 1, 3]].std(0), torch.ones(3), atol=1e-2)
    assert torch.allclose(z[:, 2], torch.zeros(1000))  # centred, not divided by ~0
    assert torch.allclose(norm.denorm_obs(z), o, atol=1e-4)
    d = torch.as_tensor(nxt - obs)
    assert torch.allclose(norm.denorm_delta(norm.norm_delta(d)), d, atol=1e-5)
    assert torch.isfinite(norm.norm_delta(d)).all()


@pytest.mark.parametrize("mode", ["stable", "redraw"])
def test_split_episodes_holds_out_whole_episodes(mode):
    buf = make_buffer([10] * 10)
    train, val = split_episodes(buf, 0.2, np.random.default_rng(0), mode)
    assert (train ^ val).all()
    val_eps = set(buf.episode_id[val].tolist())
    assert val_eps and not val_eps & set(buf.episode_id[train].tolist())
    assert len(val_eps) == 2 if mode == "redraw" else 1 <= len(val_eps) <= 4


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_stable_split_never_validates_on_an_episode_an_earlier_fit_trained_on(fraction):
    # The buffer grows episode by episode; fits draw from different random streams.
    trained: set[int] = set()
    for n in range(2, 61):
        buf = make_buffer([5] * n)
        train, val = split_episodes(buf, fraction, np.random.default_rng(n), "stable")
        val_eps = set(buf.episode_id[val].tolist())
        assert val_eps and not val_eps & trained and 0 not in val_eps
        trained |= set(buf.episode_id[train].tolist())
    assert abs(len(val_eps) / 60 - fraction) < 0.15  # about the fraction asked for (one draw per episode)


def test_redrawn_split_validates_on_episodes_earlier_fits_trained_on():
    # Why "redraw" is no longer the default: some fit is scored on data an earlier one learnt.
    trained: set[int] = set()
    leaked = False
    for n in range(2, 31):
        buf = make_buffer([5] * n)
        train, val = split_episodes(buf, 0.1, np.random.default_rng(n), "redraw")
        leaked |= bool(set(buf.episode_id[val].tolist()) & trained)
        trained |= set(buf.episode_id[train].tolist())
    assert leaked


def test_recent_history_window_and_reset():
    h = RecentHistory(num_envs=2, window=3, obs_dim=1, act_dim=1)
    for t in range(5):
        x = torch.tensor([[float(t)], [10.0 + t]])
        h.push(x, x, x + 1)
        if t == 1:
            h.reset(1)
    d = h.data
    assert d.count.tolist() == [3, 3]
    assert d.obs[0, :, 0].tolist() == [2.0, 3.0, 4.0]
    assert d.obs[1, :, 0].tolist() == [12.0, 13.0, 14.0]
    h.reset(0)
    h.push(torch.ones(2, 1), torch.ones(2, 1), torch.ones(2, 1))
    assert d.count.tolist() == [1, 3]
    assert d.mask[0].tolist() == [False, False, True]


@pytest.mark.parametrize("batch, length", [(4, 6), (3, 2), (50, 6)])
def test_an_epoch_of_segments_passes_over_the_transitions_once(batch, length):
    from learn2adapt.data.segment_sampler import epoch_starts

    buf = make_buffer([40, 25, 60, 33])
    starts = valid_segment_starts(buf.episode_id, length)
    rng = np.random.default_rng(0)
    order = epoch_starts(starts, len(buf), length, batch, "transitions", rng)
    # meta-steps per epoch = transitions / (batch x length), at least one
    assert order.size == max(1, len(buf) // (batch * length)) * batch or order.size == starts.size
    assert len(set(order.tolist())) == order.size and set(order.tolist()) <= set(starts.tolist())
    everything = epoch_starts(starts, len(buf), length, batch, "starts", rng)
    assert sorted(everything.tolist()) == sorted(starts.tolist())
    with pytest.raises(ValueError, match="segment_epoch"):
        epoch_starts(starts, len(buf), length, batch, "passes", rng)
