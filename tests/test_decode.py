"""Image files into memory: read once, decoded in parallel, cached, JPEG on CUDA (issue 26)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import skft.data.images as images
from skft import FineTunedClassifier
from skft.data.decode_cache import DecodeCache, decode_cache
from skft.data.images import (
    decode_file,
    decode_jpegs_on,
    load_image_files,
    read_image_file,
)
from skft.training.budget import budget_bytes


def _write(folder: Path, n: int, kinds=("rgb", "gray", "png")) -> list[str]:
    """``n`` small non-square images cycling through ``kinds``: RGB JPEG, gray JPEG, RGB PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        a = rng.integers(0, 256, (20 + i % 5, 27), dtype=np.uint8)
        rgb = np.stack([a, a // 2, 255 - a], -1)
        path = folder / f"{i:03d}.{'png' if kind == 'png' else 'jpg'}"
        Image.fromarray(a if kind == "gray" else rgb).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def paths(tmp_path):
    return _write(tmp_path / "img", 12)


@pytest.fixture(autouse=True)
def empty_cache():
    decode_cache.clear()
    yield
    decode_cache.clear()


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = images.read_image_file

    def counted(path):
        reads.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(images, "read_image_file", counted)
    return reads


# --------------------------------------------------------------------------
# parallel decoding
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kinds", [("rgb", "gray", "png"), ("gray",), ("rgb", "png")])
def test_parallel_decoding_gives_the_serial_tensors(tmp_path, kinds):
    files = _write(tmp_path / "img", 9, kinds)
    serial = load_image_files(files, 16, threads=1, cache=False)
    parallel = load_image_files(files, 16, threads=4, cache=False)
    assert parallel.dtype == torch.uint8
    assert parallel.shape == (9, 1 if kinds == ("gray",) else 3, 16, 16)
    assert torch.equal(parallel, serial)
    # the streamer's per-file decoder gives the same pixels (a gray file among RGB ones too)
    per_file = torch.stack([decode_file(p, 16, serial.shape[1]) for p in files])
    assert torch.equal(per_file, serial)


def test_each_file_is_read_once_and_never_reopened_for_its_mode(paths, monkeypatch):
    reads = _count_reads(monkeypatch)
    opened: list = []
    real_open = Image.open

    def spy(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    load_image_files(paths, 16, threads=2, cache=False)
    assert sorted(reads) == sorted(paths)
    assert not [fp for fp in opened if isinstance(fp, (str, os.PathLike))]  # bytes only


def test_default_threads_use_every_core():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert images.decode_threads() == (expected or os.cpu_count() or 1)


@pytest.mark.parametrize("threads", [1, 3])
def test_missing_and_corrupt_files_are_named(paths, tmp_path, threads):
    missing = str(tmp_path / "gone.jpg")
    with pytest.raises(FileNotFoundError, match=f"image file not found: {missing}"):
        load_image_files([*paths, missing], 16, threads=threads)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot read image file {bad}: cannot identify"):
        load_image_files([*paths, str(bad)], 16, threads=threads)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(paths[0]).read_bytes()[:200])
    with pytest.raises(ValueError, match=f"cannot read image file {truncated}"):
        load_image_files([str(truncated), *paths], 16, threads=threads, cache=False)


# --------------------------------------------------------------------------
# the decoded-image cache
# --------------------------------------------------------------------------


def test_cache_hit_and_miss(paths, monkeypatch):
    reads = _count_reads(monkeypatch)
    first = load_image_files(paths, 16)
    assert decode_cache.stats.misses == len(paths) and decode_cache.stats.hits == 0
    assert len(reads) == len(paths) and len(decode_cache) == len(paths)
    again = load_image_files(paths[::-1], 16)
    assert len(reads) == len(paths)  # nothing read again
    assert decode_cache.stats.hits == len(paths)
    assert torch.equal(again, first.flip(0))
    again[0].zero_()  # callers own their tensor: the cache keeps its own copy
    assert torch.equal(load_image_files(paths, 16), first)
    load_image_files(paths, 20)  # another size: misses
    assert len(reads) == 2 * len(paths)
    assert decode_cache.stats.misses == 2 * len(paths)


def test_cache_off_neither_reads_nor_fills(paths, monkeypatch):
    reads = _count_reads(monkeypatch)
    load_image_files(paths, 16)
    load_image_files(paths, 16, cache=False)
    assert len(reads) == 2 * len(paths) and decode_cache.stats.hits == 0
    monkeypatch.setattr(decode_cache, "max_bytes", 0)  # SKFT_DECODE_CACHE_MB=0
    decode_cache.clear()
    load_image_files(paths, 16)
    assert len(decode_cache) == 0 and len(reads) == 3 * len(paths)


@pytest.mark.parametrize("suffix", ["jpg", "bmp"])  # a BMP rewritten keeps its byte size
def test_a_changed_file_is_decoded_again(paths, suffix):
    target = Path(paths[0]).with_suffix(f".{suffix}")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)).save(target)
    files = [str(target), *paths[1:]]
    before = load_image_files(files, 16)
    st = target.stat()
    Image.fromarray(rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)).save(target)
    assert suffix != "bmp" or target.stat().st_size == st.st_size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    after = load_image_files(files, 16)
    assert decode_cache.stats.misses == len(files) + 1 and decode_cache.stats.hits == len(files) - 1
    assert torch.equal(after[1:], before[1:])
    assert torch.equal(after[0], decode_file(target, 16, 3))
    assert not torch.equal(after[0], before[0])


def test_cache_memory_is_bounded_and_evicts_the_oldest(paths, monkeypatch):
    per_file = 3 * 16 * 16
    cache = DecodeCache(max_bytes=4 * per_file)
    monkeypatch.setattr("skft.data.images.decode_cache", cache)
    rgb = [p for i, p in enumerate(paths) if i % 3 != 1]  # 3-channel files only
    load_image_files(rgb, 16, threads=1)  # one thread: files enter in order
    assert len(cache) == 4 and cache.nbytes <= cache.max_bytes
    assert cache.stats.evictions == len(rgb) - 4
    hits = cache.stats.hits
    load_image_files(rgb[-4:], 16, threads=1)  # the most recent ones stayed
    assert cache.stats.hits == hits + 4
    load_image_files(rgb[:1], 16)  # the first was evicted
    assert cache.stats.hits == hits + 4


def test_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SKFT_DECODE_CACHE_MB", "2")
    assert budget_bytes("SKFT_DECODE_CACHE_MB") == 2 * 2**20
    assert DecodeCache().max_bytes == 2 * 2**20
    monkeypatch.setenv("SKFT_DECODE_CACHE_MB", "0")
    assert not DecodeCache().enabled
    monkeypatch.setenv("SKFT_DECODE_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="SKFT_DECODE_CACHE_MB must be a number of MiB"):
        DecodeCache()


def test_fits_and_scores_of_a_search_decode_each_file_once(paths, fast, monkeypatch):
    from sklearn.model_selection import cross_val_score

    reads = _count_reads(monkeypatch)
    y = np.arange(len(paths)) % 2
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1})
    cross_val_score(clf, np.array(paths), y, cv=2)
    clf.fit(paths, y).score(paths, y)
    assert sorted(set(reads)) == sorted(paths) and len(reads) == len(paths)
    off = FineTunedClassifier(**{**fast, "max_epochs": 1, "decode_cache": False})
    off.fit(paths, y)
    assert len(reads) == 2 * len(paths)
    np.testing.assert_array_equal(off.predict_proba(paths), clf.predict_proba(paths))
    with pytest.raises(ValueError, match="decode_cache must be True or False"):
        FineTunedClassifier(**fast, decode_cache="yes").fit(paths, y)


# --------------------------------------------------------------------------
# JPEG on CUDA (nvJPEG), and the CPU path it falls back to
# --------------------------------------------------------------------------


def test_cuda_decoding_falls_back_to_the_cpu_without_cuda(paths, monkeypatch):
    files = [read_image_file(p) for p in paths if p.endswith(".jpg")]
    monkeypatch.setattr(images, "decodes_on_cuda", lambda device: False)
    out = decode_jpegs_on("cuda", files, 16)
    for f, img in zip(files, out):
        assert torch.equal(img, decode_file(f.path, 16, 1 if f.gray else 3))
    # a CUDA device asked for where there is none: the CPU path, same tensors
    assert torch.equal(
        load_image_files(paths, 16, device="cuda", cache=False),
        load_image_files(paths, 16, device="cpu", cache=False),
    )


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA decoding "available": torchvision's decode_jpeg records its calls, decodes on CPU."""
    import torchvision.io

    calls: list[tuple[int, str, str]] = []
    real = torchvision.io.decode_jpeg

    def decode_jpeg(datas, mode, device="cpu"):
        calls.append((len(datas), str(mode), str(device)))
        return real(datas, mode=mode, device="cpu")

    monkeypatch.setattr(images, "decodes_on_cuda", lambda device: str(device).startswith("cuda"))
    monkeypatch.setattr(torchvision.io, "decode_jpeg", decode_jpeg)
    return calls


def test_jpeg_files_go_to_the_cuda_decoder_and_others_to_the_cpu(paths, fake_cuda, monkeypatch):
    out = load_image_files(paths, 16, device="cuda", cache=False)
    jpegs = [p for p in paths if p.endswith(".jpg")]
    gray = sum(1 for p in jpegs if Image.open(p).mode == "L")
    assert sorted(fake_cuda) == sorted(
        [(gray, "ImageReadMode.GRAY", "cuda"), (len(jpegs) - gray, "ImageReadMode.RGB", "cuda")]
    )
    assert torch.equal(out, load_image_files(paths, 16, cache=False))  # same decoder here
    fake_cuda.clear()  # small chunks: files read and decoded block by block, same tensors
    monkeypatch.setattr(images, "GPU_DECODE_CHUNK", 2)
    assert torch.equal(load_image_files(paths, 16, device="cuda", cache=False), out)
    assert max(n for n, _, _ in fake_cuda) == 2 and sum(n for n, _, _ in fake_cuda) == len(jpegs)
    # the decoder is part of the cache key: CPU entries never answer for CUDA
    load_image_files(paths, 16)
    load_image_files(paths, 16, device="cuda")
    assert decode_cache.stats.misses == 2 * len(paths)


def test_a_chunk_the_cuda_decoder_refuses_takes_the_cpu_path(paths, fake_cuda, monkeypatch):
    import torchvision.io

    def refuse(datas, mode, device="cpu"):
        raise RuntimeError("nvjpeg: unsupported")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", refuse)
    out = load_image_files(paths, 16, device="cuda:0", cache=False)
    assert torch.equal(out, load_image_files(paths, 16, cache=False))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_pixels_are_close_to_the_cpu_decoders(tmp_path):
    files = _write(tmp_path / "img", 8, ("rgb", "gray"))
    on_gpu = load_image_files(files, 16, device="cuda", cache=False)
    on_cpu = load_image_files(files, 16, device="cpu", cache=False)
    assert on_gpu.device.type == "cpu" and on_gpu.shape == on_cpu.shape
    assert (on_gpu.int() - on_cpu.int()).abs().float().mean() < 2.0


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_load_of_some_cached_files_keeps_the_order(paths, fake_cuda, monkeypatch, device):
    """Hits are looked up first and misses decoded after: every row stays its file's."""
    monkeypatch.setattr(images, "GPU_DECODE_CHUNK", 2)  # misses in several blocks
    expected = load_image_files(paths[::-1], 16, device=device, cache=False)
    load_image_files(paths[::3], 16, device=device)  # a third of the files cached
    assert decode_cache.stats.misses == len(paths[::3])
    out = load_image_files(paths[::-1], 16, device=device)
    assert torch.equal(out, expected)
    assert decode_cache.stats.hits == len(paths[::3])
    assert decode_cache.stats.misses == len(paths)
