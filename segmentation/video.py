"""Video input and output: probe and stream frames from a file or a frames folder, write browser-ready H.264.

Frames are RGB uint8 arrays (H, W, 3) in display orientation. Decoding and encoding go through PyAV (ffmpeg).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from segmentation.errors import InputError
from segmentation.paths import kind_of, user_path

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_FOLDER_FPS = 24.0
# Frame rates outside this range come from damaged or odd headers (VFR files report 90000 or 1/1000): such
# a file falls back to its other rate fields, then to the default, instead of making an unplayable overlay.
FPS_RANGE = (0.5, 480.0)
# 16K frames and larger are damaged headers or decompression bombs: one RGB frame alone would take 800 MB.
MAX_SIDE = 8192 * 2
MAX_PIXELS = 8192 * 8192
# Per-frame names are listed for counts up to this; a damaged header can claim billions of frames.
MAX_NAMED_FRAMES = 1_000_000

# ffmpeg happily "opens" a single picture as a one-frame video; we want those to be rejected as videos.
_IMAGE_FORMATS = {"image2", "image2pipe"}


@dataclass
class VideoInfo:
    source: str
    width: int  # display size: rotation already applied
    height: int
    fps: float
    frame_count: int  # exact for folders; container count (or duration * fps) for files
    frame_names: list[str] = field(default_factory=list)
    codec: str = "frames"
    # Clockwise degrees the coded picture is turned for display (as phones' legacy "rotate" tag): 0/90/180/270.
    rotation: int = 0
    is_folder: bool = False


def _folder_frames(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS)
    if not files:
        raise InputError(f"{folder}: folder has no JPEG or PNG frames (expected files like 00000.jpg)")
    return files


def _check_fps(fps: float | None, default: float) -> float:
    if fps is None:
        return default
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def _check_size(name: str, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"{name}: frames have no pixels ({width}x{height}); the file is damaged")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise InputError(f"{name}: frames are {width}x{height}; at most 8192x8192 pixels are supported")


def _probe_folder(folder: Path, fps: float | None) -> VideoInfo:
    fps = _check_fps(fps, DEFAULT_FOLDER_FPS)
    files = _folder_frames(folder)
    size = None
    # Opening with PIL only reads headers, so checking every frame's size is cheap.
    for path in files:
        try:
            with Image.open(path) as img:
                this = img.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(f"{path}: frame is not a readable JPEG/PNG image ({e})") from e
        _check_size(path.name, *this)
        if size is None:
            size = this
        elif this != size:
            raise InputError(
                f"{path.name}: frame is {this[0]}x{this[1]} but {files[0].name} is {size[0]}x{size[1]}; "
                "all frames in a folder must have the same size"
            )
    return VideoInfo(
        source=str(folder),
        width=size[0],
        height=size[1],
        fps=fps,
        frame_count=len(files),
        frame_names=[p.stem for p in files],
        codec="frames",
        rotation=0,
        is_folder=True,
    )


def _clockwise(frame: av.VideoFrame) -> int:
    # PyAV reports the display matrix as counter-clockwise degrees in [-180, 180].
    return int(round(-frame.rotation / 90.0)) % 4 * 90


def _to_display(rgb: np.ndarray, clockwise: int) -> np.ndarray:
    if clockwise == 0:
        return rgb
    # np.rot90 turns counter-clockwise, so a negative k turns clockwise.
    return np.ascontiguousarray(np.rot90(rgb, k=-(clockwise // 90)))


def _open_video(path: Path) -> av.container.InputContainer:
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path.name}: the file is empty (0 bytes); give the video again")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as e:  # UnicodeDecodeError: garbage in the metadata tags
        raise InputError(
            f"{path.name}: not a video ffmpeg can read (corrupt, truncated or not a video file: {_why(e)})"
        ) from e
    fmt = container.format.name
    if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
        container.close()
        raise InputError(
            f"{path.name}: is a still image ({fmt}), not a video; give a video file or a frames folder"
        )
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        what = (
            "audio-only file"
            if kinds == ["audio"]
            else f"file with no video stream (streams: {kinds or 'none'})"
        )
        raise InputError(f"{path.name}: {what}; give a file with a video track")
    return container


def _bmff_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes its top-level boxes declare, bytes it has) for an MP4/MOV cut short; None when it is whole.

    With the index at the front, a cut mp4 still probes and decodes all but its last frames without an error
    (ffmpeg only logs "partial file"), so a few lost frames would pass as a shorter video: the box sizes tell.
    """
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as f:
        for _ in range(10_000):  # real files have a handful of top-level boxes
            if offset + 8 > size:
                break
            f.seek(offset)
            header = f.read(16)
            box = int.from_bytes(header[:4], "big")
            if box == 1 and len(header) == 16:  # 64-bit size follows the type
                box = int.from_bytes(header[8:16], "big")
            if box < 8:  # 0 = "to the end of the file"; smaller is not a box: leave it to ffmpeg
                return None
            offset += box
    return (offset, size) if offset > size else None


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        fps = float(rate) if rate else 0.0
        if FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
            return fps
    return DEFAULT_FOLDER_FPS


def _probe_file(path: Path) -> VideoInfo:
    with _open_video(path) as container:
        if "mp4" in container.format.name.split(","):
            shortfall = _bmff_shortfall(path)
            if shortfall:
                raise InputError(
                    f"{path.name}: the file is truncated ({shortfall[1]} of {shortfall[0]} bytes); "
                    "it was cut short while copying, downloading or recording"
                )
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        # Decoding one frame proves the data is usable and gives the display rotation (frame side data).
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as e:
            raise InputError(f"{path.name}: cannot decode the first video frame ({_why(e)})") from e
        if first is None:
            raise InputError(f"{path.name}: the video stream has no frames")
        rotation = _clockwise(first)
        coded_w, coded_h = first.width, first.height
        _check_size(path.name, coded_w, coded_h)
        count = stream.frames or 0
        if count <= 0:
            # webm/mkv often carry no frame count: estimate it from the duration.
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                seconds = 0.0
            count = int(round(seconds * fps)) if math.isfinite(seconds) and seconds > 0 else 0
        count = max(1, count)
        codec = stream.codec_context.name
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        source=str(path),
        width=width,
        height=height,
        fps=fps,
        frame_count=count,
        frame_names=[f"{i:05d}" for i in range(count)] if count <= MAX_NAMED_FRAMES else [],
        codec=codec,
        rotation=rotation,
        is_folder=False,
    )


def _why(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or error.__class__.__name__


def _existing(source) -> Path:
    path = user_path(source, "video")
    if kind_of(path) == "missing":
        raise InputError(f"{path}: no such file or folder")
    return path


def probe(source, fps: float | None = None) -> VideoInfo:
    """Describe a video file or a folder of frames; raise InputError if it cannot be used.

    ``fps`` sets the frame rate of a frames folder (default 24); a video file keeps its own rate.
    """
    path = _existing(source)
    if path.is_dir():
        return _probe_folder(path, fps)
    return _probe_file(path)


def _iter_folder(folder: Path, only=None) -> Iterator[np.ndarray | None]:
    files = _folder_frames(folder)
    size = None
    for index, path in enumerate(files):
        if only is not None and not only(index):
            yield None
            continue
        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(f"{path.name}: frame {index} is not a readable image ({e})") from e
        if size is None:
            size = rgb.shape
        elif rgb.shape != size:
            raise InputError(f"{path.name}: frame {index} has a different size from the first frame")
        yield rgb


def _iter_file(path: Path, only=None) -> Iterator[np.ndarray | None]:
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the bottleneck on CPU
        expected = stream.frames or 0
        index = 0
        size = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.width, frame.height)
                if only is not None and not only(index):  # decoded (the codec needs it), not converted
                    index += 1
                    yield None
                    continue
                # Rescale the rare mid-stream resolution change so every frame matches the probed size.
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                yield _to_display(rgb, _clockwise(frame))
                index += 1
        except (av.FFmpegError, ValueError) as e:  # ValueError: a pixel format that cannot be converted
            raise InputError(
                f"{path.name}: decoding failed at frame {index} ({_why(e)}); the file is corrupt or truncated"
            ) from e
    # A truncated mp4 whose index sits at the front decodes silently short: compare with the index's count.
    # Small shortfalls are normal (edit lists), so only a clear gap counts as damage.
    if expected and expected - index > max(2, expected // 50):
        raise InputError(
            f"{path.name}: decoding stopped at frame {index} of {expected}; the file is truncated or corrupt"
        )
    if index == 0:
        raise InputError(f"{path.name}: the video stream has no frames")


def iter_frames(source, fps: float | None = None, only: Callable[[int], bool] | None = None) -> Iterator:
    """Stream RGB uint8 (H, W, 3) frames in display orientation, one at a time.

    ``only``: a frame whose index it refuses comes out as None, not converted to RGB (nor read, in a folder),
    where the caller has no use for it. ``fps`` is accepted for symmetry with :func:`probe`; it does not change
    which frames come out.
    """
    path = _existing(source)
    if path.is_dir():
        return _iter_folder(path, only)
    return _iter_file(path, only)


def _rate(fps: float) -> Fraction:
    if not (isinstance(fps, int | float | Fraction) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    # 1001 keeps NTSC rates exact (30000/1001) while 29.97 given literally stays 2997/100.
    return Fraction(fps).limit_denominator(1001)


KEYFRAME_SECONDS = 2  # a keyframe at least this often: a seek decodes little, and a new version can splice
# The overlay's encoder settings (benchmarks/encode.py compares them with others): x264's superfast preset with
# its lookahead and macroblock tree put back, which keep the quality of a slower preset for a little more size.
X264_OPTIONS = {"crf": "20", "preset": "superfast", "x264-params": "mbtree=1:rc-lookahead=10"}


class SpliceError(ValueError):
    """An earlier file whose frames cannot be copied into a new one (`VideoWriter.copy`): encode them instead."""


def keyframes(path) -> list[int]:
    """The frame indices where an mp4 written by VideoWriter starts a closed group of pictures (read from the
    container's packets, nothing decoded): where `VideoWriter.copy` may start or stop. One splice asks several
    times (where to splice, then each copy checks its ends): the file is read once while it stays unchanged."""
    try:
        stat = Path(path).stat()
    except OSError:  # missing or unreadable: read uncached, so av.open raises its own error as for any file
        return list(_keyframes.__wrapped__(str(path), 0, 0))
    return list(_keyframes(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _keyframes(path: str, _mtime_ns: int, _size: int) -> tuple[int, ...]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise SpliceError(f"{Path(path).name}: has no frame rate")
        return tuple(
            round(packet.pts * packet.time_base * rate)
            for packet in container.demux(stream)
            if packet.pts is not None and packet.is_keyframe
        )


def _parameter_sets(extradata: bytes | None) -> list[bytes]:
    """The SPS and PPS NAL units of H.264 extradata: a file's (avcC) or an encoder's (Annex B start codes)."""
    data = extradata or b""
    if data[:1] != b"\x01":
        return [unit.rstrip(b"\x00") for unit in data.split(b"\x00\x00\x01") if unit.strip(b"\x00")]
    units, pos = [], 5
    for mask in (0x1F, 0xFF):  # the SPS count (low 5 bits), then the PPS count
        count, pos = data[pos] & mask, pos + 1
        for _ in range(count):
            size = int.from_bytes(data[pos : pos + 2], "big")
            units.append(data[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return units


def add_h264_stream(container, width: int, height: int, rate: Fraction, options: dict = X264_OPTIONS):
    """The overlay's H.264 stream in `container`: yuv420p at the size padded to even, a keyframe every
    KEYFRAME_SECONDS, x264's own threads, `options` (benchmarks/encode.py passes others)."""
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height = width + width % 2, height + height % 2
    stream.pix_fmt = "yuv420p"
    stream.options = dict(options)
    stream.codec_context.gop_size = max(1, round(KEYFRAME_SECONDS * rate))
    stream.thread_type = "AUTO"
    return stream


class VideoWriter:
    """Write RGB frames to an H.264 mp4 that browsers play while it downloads.

    Odd sizes are padded to even (yuv420p needs it) by repeating the last row/column, never cropped. `copy` takes
    frames over from an earlier file of the same size and rate without encoding them again (a new version of a
    result whose overlay changed in a few places): frames before it are encoded, frames after it copied only.
    """

    def __init__(self, path, width: int, height: int, fps: float):
        if width < 1 or height < 1:
            raise InputError(f"video size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.rate = _rate(fps)
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # faststart moves the index to the front so playback can start before the download ends.
        self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        stream = add_h264_stream(self._container, self.width, self.height, self.rate)
        # Frames carry pts in this fixed base; the stream's own time_base changes once the muxer starts.
        self._time_base = 1 / self.rate
        stream.time_base = self._time_base
        self._stream = stream
        self._encoding = True  # until frames are copied after encoded ones: the encoder is flushed then

    def write(self, rgb: np.ndarray) -> None:
        if self._container is None:
            raise ValueError("VideoWriter is closed")
        if not self._encoding:
            raise ValueError("VideoWriter cannot encode after frames were copied behind encoded ones")
        rgb = np.asarray(rgb)
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 ({self.height}, {self.width}, 3), got {rgb.dtype} {rgb.shape}"
            )
        pad_h, pad_w = self.height % 2, self.width % 2
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        # OpenCV's SIMD conversion to the encoder's yuv420p (BT.601, limited range, as swscale's default) is far
        # cheaper than swscale's, which took a large share of a 1080p encode.
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        frame.pts = self.frames_written
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def check_copy(self, source) -> None:
        """Raises SpliceError where frames of `source` cannot be copied into this file: another size, frame rate
        or encoder parameters (copied frames keep their own parameter sets; the encoded ones use this file's)."""
        name = Path(source).name
        try:
            with av.open(str(source)) as container:
                self._check_source(container.streams.video[0], name)
        except av.FFmpegError as error:
            raise SpliceError(f"{name}: cannot be read ({_why(error)})") from error

    def _check_source(self, stream, name: str) -> None:
        """check_copy on the video stream of a source already open."""
        if (stream.width, stream.height) != (self._stream.width, self._stream.height) or (
            stream.average_rate != self.rate
        ):
            raise SpliceError(f"{name}: another size or frame rate")
        self._container.start_encoding()  # opens the encoder: its parameter sets are this file's
        if _parameter_sets(stream.codec_context.extradata) != _parameter_sets(self._stream.codec_context.extradata):
            raise SpliceError(f"{name}: encoded with other parameters than this file's")

    def copy(self, source, start: int, stop: int) -> None:
        """Takes frames [start, stop) of `source` (an mp4 from a VideoWriter of this size and rate) over as they
        are: `start` must be one of its `keyframes` and `stop` another or its end, and the frames must follow
        the ones written so far. Raises SpliceError where the file does not allow it (nothing muxed, except for
        a file that turns out shorter than its index says: then this writer is left unusable)."""
        if self._container is None:
            raise ValueError("VideoWriter is closed")
        if start != self.frames_written:
            raise ValueError(f"frames copied from {start} must follow the {self.frames_written} written")
        name = Path(source).name
        try:
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                self._check_source(stream, name)
                promised = stream.frames
                starts = keyframes(source)
                if start not in starts or (stop not in starts and stop < promised):
                    raise SpliceError(f"{name}: frames {start}-{stop} do not start and end at keyframes")
                if self.frames_written and self._encoding:
                    self._flush()
                # Back to Annex B (parameter sets in-band), as the encoder's own packets are: the mp4 muxer then
                # writes both alike.
                annex_b = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", stream)
                inside, copied = False, 0
                for packet in container.demux(stream):
                    if packet.pts is None:
                        continue
                    if packet.is_keyframe:
                        inside = start <= round(packet.pts * packet.time_base * self.rate) < stop
                    if inside:
                        copied += 1
                        for out in annex_b.filter(packet):
                            out.stream = self._stream
                            self._container.mux(out)
        except av.FFmpegError as error:
            if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
                raise  # writing failed (a full disk): not the source's fault
            raise SpliceError(f"{name}: cannot be read ({_why(error)})") from error
        if copied != min(stop, promised) - start:  # a file cut short: its index promises more
            raise SpliceError(f"{name}: has {copied} of frames {start}-{stop}")
        self.frames_written = stop

    def _flush(self) -> None:
        for packet in self._stream.encode():  # the encoder's delayed frames
            self._container.mux(packet)
        self._encoding = False

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._encoding:
                self._flush()
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
