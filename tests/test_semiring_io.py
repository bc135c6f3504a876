"""Semiring matmul against a direct logsumexp, and checkpoint files."""

import pickle

import pytest
import torch

from latentvar.io import atomic_write_json, load_checkpoint, save_checkpoint
from latentvar.semiring import LogSemiring, MaxSemiring


def test_log_matmul_matches_direct_logsumexp_including_impossible_entries():
    a = torch.randn(2, 3, 4, dtype=torch.float64) * 30
    b = torch.randn(2, 4, 5, dtype=torch.float64) * 30
    a[0, 1, :] = float("-inf")  # a row that is impossible everywhere
    b[1, 2, 3] = float("-inf")
    direct = torch.logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)
    torch.testing.assert_close(LogSemiring.matmul(a, b), direct)
    assert torch.isneginf(LogSemiring.matmul(a, b)[0, 1]).all()
    torch.testing.assert_close(MaxSemiring.matmul(a, b), (a.unsqueeze(-1) + b.unsqueeze(-3)).amax(-2))


def test_log_sum_of_impossible_entries_is_minus_inf_with_zero_gradient():
    x = torch.tensor(
        [[float("-inf")] * 3, [0.0, 1.0, float("-inf")]], dtype=torch.float64, requires_grad=True
    )
    out = LogSemiring.sum(x, dim=-1)
    torch.testing.assert_close(out[1], torch.logsumexp(x[1].detach(), 0))
    assert torch.isneginf(out[0])
    # the all -inf row gets a zero upstream gradient through a `where`, as in a dynamic program
    torch.where(torch.isfinite(out), out, torch.zeros_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[0] == 0).all()
    torch.testing.assert_close(x.grad[1], torch.softmax(x[1].detach(), 0))
    big = torch.randn(4, 5, 6, dtype=torch.float64) * 50
    torch.testing.assert_close(LogSemiring.sum(big, dim=1), torch.logsumexp(big, dim=1))


def test_checkpoint_round_trip_and_atomicity(tmp_path):
    t = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "run", t, {"step": 7})
    loaded, meta = load_checkpoint(tmp_path / "run")
    assert meta == {"step": 7}
    assert torch.equal(loaded["w"], t["w"]) and torch.equal(loaded["b"], t["b"])
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    atomic_write_json(tmp_path / "m.json", {"x": torch.tensor(1.5)})
    assert (tmp_path / "m.json").read_text().strip() == '{\n  "x": 1.5\n}'


def test_checkpoint_metadata_travels_in_the_tensor_file(tmp_path):
    """A kill between the tensor file and its JSON copy cannot pair new weights with an old step: the
    metadata in the safetensors header wins over a stale JSON; a checkpoint from before the header (JSON
    only) still loads."""
    from safetensors.torch import save_file

    run = tmp_path / "run"
    save_checkpoint(run, {"w": torch.zeros(2)}, {"step": 1})
    json_before = (run / "checkpoint.json").read_text()
    save_checkpoint(run, {"w": torch.ones(2)}, {"step": 2})
    (run / "checkpoint.json").write_text(json_before)  # as if killed before the JSON copy was replaced
    tensors, meta = load_checkpoint(run)
    assert meta == {"step": 2} and torch.equal(tensors["w"], torch.ones(2))
    old = tmp_path / "old"
    old.mkdir()
    save_file({"w": torch.full((2,), 3.0)}, str(old / "checkpoint.safetensors"))
    (old / "checkpoint.json").write_text('{"step": 9}')
    assert load_checkpoint(old)[1] == {"step": 9}
    (old / "checkpoint.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"^run: .*no metadata in its header"):
        load_checkpoint(old)


def test_a_reader_racing_a_writer_gets_one_whole_checkpoint(tmp_path):
    """A process reading a run's checkpoint while another process replaces it (`colorize apply --run` on
    a run being trained, a test waiting for a checkpoint) gets one version, header and tensors alike --
    never one version's metadata with the next one's tensors, which the checksum refuses as corrupt.
    (safetensors' safe_open reopens the file by name for the tensor bytes: that read raced, 30 refusals
    in 13,500 reads over 5 s before `load_checkpoint` read the file once.)"""
    import subprocess
    import sys
    import time

    save_checkpoint(tmp_path, {"w": torch.zeros(64, 1024)}, {"step": 0})
    code = (
        "import torch\nfrom latentvar.io import save_checkpoint\nstep = 0\nwhile True:\n    step += 1\n"
        f"    save_checkpoint({str(tmp_path)!r}, {{'w': torch.full((64, 1024), float(step))}}, {{'step': step}})"
    )
    writer = subprocess.Popen([sys.executable, "-c", code])
    errors, reads, start = [], 0, time.time()
    try:
        while time.time() - start < 3:
            try:
                tensors, meta = load_checkpoint(tmp_path)
            except ValueError as err:
                errors.append(str(err))
                continue
            reads += 1
            assert float(tensors["w"][0, 0]) == meta["step"] == float(tensors["w"][-1, -1])
        assert writer.poll() is None, "the writer stopped"
        assert meta["step"] > 10  # the reads did overlap many writes
    finally:
        writer.kill()
        writer.wait()
    assert not errors, (len(errors), reads, errors[:2])


def test_every_header_length_loads(tmp_path):
    """The header length is the file's first 8 bytes; when its low byte is 0x80 (a pickle's first byte)
    the checkpoint must still load: metadata of 64 lengths covers every low byte's neighbourhood."""
    for pad in range(64):
        save_checkpoint(tmp_path / "run", {"w": torch.zeros(1)}, {"pad": "x" * pad})
        assert load_checkpoint(tmp_path / "run")[1] == {"pad": "x" * pad}


def test_loading_refuses_pickles(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(pickle.dumps({"w": 1}))
    (run / "checkpoint.json").write_text("{}")
    with pytest.raises(ValueError, match=r"^run: .* is a pickle or torch.save archive"):
        load_checkpoint(run)
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^run: .* looks like a pickle"):
        load_checkpoint(tmp_path / "model.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "weights.pkl").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"^run: no checkpoint .*which latentvar refuses to load"):
        load_checkpoint(empty)


def test_optimizer_state_round_trips_through_a_checkpoint(tmp_path):
    from latentvar.io import load_optimizer_tensors, optimizer_tensors

    def make():
        torch.manual_seed(1)
        net = torch.nn.Linear(3, 2)
        return net, torch.optim.Adam(net.parameters(), lr=0.1)

    def step(net, opt):
        opt.zero_grad()
        net(torch.ones(4, 3)).pow(2).sum().backward()
        opt.step()

    net, opt = make()
    for _ in range(3):
        step(net, opt)
    save_checkpoint(tmp_path, dict(net.state_dict()) | optimizer_tensors(opt, "opt"), {})
    step(net, opt)  # the uninterrupted run's fourth step

    tensors, _ = load_checkpoint(tmp_path)
    net2, opt2 = make()
    net2.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("opt.")})
    load_optimizer_tensors(opt2, tensors, "opt")
    step(net2, opt2)  # the resumed run's fourth step matches only if Adam's moments and step came back
    torch.testing.assert_close(net2.weight, net.weight)
