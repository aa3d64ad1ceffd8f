import types
import wave
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from segmentation.errors import InputError
from segmentation.video import SpliceError, VideoWriter, iter_frames, keyframes, probe


def gradient(h, w, shift=0):
    """A frame whose every column has its own grey level, so orientation and padding are visible."""
    row = ((np.arange(w) * 255 // max(w - 1, 1) + shift) % 256).astype(np.uint8)
    return np.repeat(np.broadcast_to(row, (h, w))[:, :, None], 3, axis=2).copy()


def write_clip(path, w=64, h=48, n=12, fps=24.0, frame=None):
    """n frames of `frame(i)`, by default gradients shifting 3 levels a frame."""
    with VideoWriter(path, w, h, fps) as writer:
        for i in range(n):
            writer.write(frame(i) if frame else gradient(h, w, shift=i * 3))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_write_then_read_back(clip):
    info = probe(clip)
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 48, 12, 24.0)
    assert info.codec == "h264" and info.rotation == 0 and not info.is_folder
    assert info.frame_names == [f"{i:05d}" for i in range(12)]
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.frames == 12
        times = [frame.time for frame in container.decode(stream)]
    # Evenly spaced presentation times: players show every frame for 1/fps.
    assert np.allclose(np.diff(times), 1 / 24)
    frames = iter_frames(clip)
    assert isinstance(frames, types.GeneratorType)  # streamed, not a list
    frames = list(frames)
    assert len(frames) == 12
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    # Lossy but close: crf 20 on a smooth gradient.
    assert np.abs(frames[5].astype(int) - gradient(48, 64, shift=15)).mean() < 6


def test_faststart_puts_index_first(clip):
    data = clip.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert b"avc1" in data  # the H.264 sample entry browsers expect in mp4


@pytest.mark.parametrize(
    "name, codec", [("a.webm", "libvpx-vp9"), ("a.mkv", "mpeg4"), ("a.avi", "mpeg4"), ("a.mov", "libx264")]
)
def test_other_containers(tmp_path, name, codec):
    # webm/mkv store no frame count: probe estimates it from the duration.
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(gradient(48, 64, i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 48, 10, 24.0)
    assert sum(1 for _ in iter_frames(path)) == 10


@pytest.mark.parametrize("fps, rate", [(29.97, Fraction(2997, 100)), (30000 / 1001, Fraction(30000, 1001))])
def test_fractional_fps(tmp_path, fps, rate):
    path = write_clip(tmp_path / "ntsc.mp4", n=8, fps=fps)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == rate
    info = probe(path)
    assert info.frame_count == 8 and info.fps == pytest.approx(fps)


def test_odd_size_pads_to_even_by_repeating_edges(tmp_path):
    path = write_clip(tmp_path / "odd.mp4", w=65, h=47, n=8)
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (66, 48, 8)
    frame = next(iter_frames(path)).astype(int)
    # The added column repeats the brightest (last) column rather than black padding.
    assert abs(frame[:, 65].mean() - frame[:, 64].mean()) < 8
    assert frame[:, 65].mean() > 200
    assert abs(frame[47].mean() - frame[46].mean()) < 8


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "rotated.mp4"
    src = gradient(48, 64)
    src[:8, :8] = 255  # mark the top-left corner
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise, as a phone held sideways
        for _ in range(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(src, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 270)
    frame = next(iter_frames(path)).astype(int)
    assert frame.shape == (64, 48, 3)
    assert np.abs(frame - np.rot90(src, 1)).mean() < 8


def test_folder_is_read_in_name_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, value in [("b", 100), ("a", 50), ("c", 200)]:
        Image.fromarray(np.full((48, 64, 3), value, np.uint8)).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("ignored")
    info = probe(folder)
    assert info.is_folder and info.codec == "frames"
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 48, 3, 24.0)
    assert info.frame_names == ["a", "b", "c"]
    assert probe(folder, fps=10).fps == 10.0
    assert [int(f[0, 0, 0]) for f in iter_frames(folder)] == [50, 100, 200]


def test_folder_greyscale_jpeg_frames_come_out_rgb(tmp_path):
    Image.fromarray(np.full((48, 64), 90, np.uint8)).save(tmp_path / "0.jpg")
    frame = next(iter_frames(tmp_path))
    assert frame.shape == (48, 64, 3)


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no JPEG or PNG frames"):
        probe(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((50, 64, 3), np.uint8)).save(mixed / "1.png")
    with pytest.raises(InputError, match="1.png.*64x50.*same size"):
        probe(mixed)
    with pytest.raises(InputError, match="positive"):
        probe(empty.parent / "mixed", fps=0)


def test_bad_files_raise_input_error(tmp_path, clip):
    cases = {}
    cases["random.mp4"] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    cases["text.mp4"] = b"this is a text file, not a video\n" * 20
    png = tmp_path / "img.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(png)
    cases["picture.mp4"] = png.read_bytes()
    # Without faststart the index is at the end, so a cut file has none.
    no_index = tmp_path / "noindex.mp4"
    with av.open(str(no_index), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(gradient(48, 64), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cases["cut.mp4"] = no_index.read_bytes()[:-200]
    expected = {
        "random.mp4": "not a video",
        "text.mp4": "not a video",
        "picture.mp4": "still image",
        "cut.mp4": "not a video",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError, match=expected[name]):
            probe(path)
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="no such file"):
        iter_frames(tmp_path / "missing.mp4")


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    with pytest.raises(InputError, match="audio-only"):
        probe(path)


def test_truncated_video_names_the_frame(tmp_path):
    path = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, 64, 48, 24) as writer:  # noise: every frame takes real bytes
        for _ in range(16):
            writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    # The index at the front still lists every frame, but the boxes' sizes show the cut at once.
    with pytest.raises(InputError, match=r"truncated \(\d+ of \d+ bytes\)"):
        probe(cut)
    # Decoding compares with the index's count too (what catches a cut in other containers).
    with pytest.raises(InputError, match=r"at frame \d+ of 16"):
        for _ in iter_frames(cut):
            pass


def test_writer_checks_frames(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", 64, 48, 24)
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((48, 63, 3), np.uint8))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(InputError, match="fps"):
        VideoWriter(tmp_path / "y.mp4", 64, 48, 0)


def disc(i, shade=0, w=96, h=64):
    """A frame with a disc that moves one pixel a frame; `shade` changes its colour."""
    frame = np.full((h, w, 3), 60, np.uint8)
    ys, xs = np.ogrid[:h, :w]
    frame[(ys - h // 2) ** 2 + (xs - 10 - i % 70) ** 2 < 15**2] = (200, 100 + shade, 50)
    return frame


def test_keyframes_every_two_seconds_and_only_the_frames_asked_for(tmp_path):
    path = write_clip(tmp_path / "a.mp4", 96, 64, 50, 10, frame=disc)
    assert keyframes(path) == [0, 20, 40]
    every = list(iter_frames(path))
    for source in (path, _as_folder(tmp_path / "frames", every)):
        some = list(iter_frames(source, only=lambda i: i == 3 or i >= 35))
        assert len(some) == 50 and [i for i, f in enumerate(some) if f is not None] == [3, *range(35, 50)]
        assert np.abs(some[35].astype(int) - every[35]).mean() < 1


def _as_folder(folder, frames):
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    return folder


def test_copy_splices_frames_of_an_earlier_file_around_new_ones(tmp_path):
    old = write_clip(tmp_path / "old.mp4", 96, 64, 50, 10, frame=disc)
    new = tmp_path / "new.mp4"
    with VideoWriter(new, 96, 64, 10) as writer:
        writer.copy(old, 0, 20)
        for i in range(20, 40):
            writer.write(disc(i, shade=150))
        writer.copy(old, 40, 50)
    frames = list(iter_frames(new))
    assert len(frames) == 50 and probe(new).frame_count == 50
    green = [int(f[32, 10 + i % 70, 1]) for i, f in enumerate(frames)]
    assert all(abs(g - 100) < 8 for g in green[:20] + green[40:]) and all(abs(g - 250) < 8 for g in green[20:40])
    old_frames = list(iter_frames(old))
    for i in [*range(20), *range(40, 50)]:  # copied: the very same pictures
        assert np.array_equal(frames[i], old_frames[i]), i


def test_copy_refuses_what_it_cannot_splice(tmp_path):
    old = write_clip(tmp_path / "old.mp4", 96, 64, 50, 10, frame=disc)
    with VideoWriter(tmp_path / "a.mp4", 96, 64, 10) as writer:
        with pytest.raises(ValueError, match="keyframes"):
            writer.copy(old, 0, 25)
        with pytest.raises(ValueError, match="follow"):
            writer.copy(old, 20, 40)
    with VideoWriter(tmp_path / "b.mp4", 64, 48, 10) as writer, pytest.raises(ValueError, match="size"):
        writer.copy(old, 0, 20)
    cut = tmp_path / "cut.mp4"  # a copy cut short: its index still promises 50 frames
    with av.open(str(old)) as container:
        at = [packet.pos for packet in container.demux(video=0) if packet.pts is not None][31]
    cut.write_bytes(old.read_bytes()[:at])
    with VideoWriter(tmp_path / "e.mp4", 96, 64, 10) as writer:
        for i in range(20):
            writer.write(disc(i))
        with pytest.raises(SpliceError, match="has 11 of frames 20-50"):
            writer.copy(cut, 20, 50)
    other = tmp_path / "other.mp4"  # another encoder's settings: other parameter sets, its frames would not decode
    with av.open(str(other), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10, options={"preset": "ultrafast", "g": "20"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(50):
            for packet in stream.encode(av.VideoFrame.from_ndarray(disc(i), format="rgb24").reformat(format="yuv420p")):
                container.mux(packet)
        container.mux(stream.encode())
    assert keyframes(other)[:2] == [0, 20]
    with VideoWriter(tmp_path / "d.mp4", 96, 64, 10) as writer, pytest.raises(ValueError, match="parameters"):
        writer.copy(other, 0, 20)
    with VideoWriter(tmp_path / "c.mp4", 96, 64, 10) as writer:
        writer.copy(old, 0, 20)
        writer.write(disc(20))
        with pytest.raises(ValueError, match="follow"):
            writer.copy(old, 40, 50)  # frames 21-39 would be missing
        for i in range(21, 40):
            writer.write(disc(i))
        writer.copy(old, 40, 50)
        with pytest.raises(ValueError, match="copied"):  # the encoder was flushed before the copied frames
            writer.write(disc(50))
    assert len(list(iter_frames(tmp_path / "c.mp4"))) == 50
