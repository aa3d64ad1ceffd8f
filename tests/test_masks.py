import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation.errors import InputError
from segmentation.masks import (
    MAX_OBJECTS,
    PALETTE,
    color_of,
    read_first_mask,
    read_mask,
    read_masks,
    write_mask,
)

W, H = 64, 48


def labels_two_objects():
    labels = np.zeros((H, W), np.uint8)
    labels[10:20, 10:30] = 1
    labels[30:40, 40:50] = 3  # ids need not be contiguous
    return labels


def binary():
    mask = np.zeros((H, W), np.uint8)
    mask[12:30, 20:44] = 255
    return mask


def test_palette_is_davis():
    assert len(PALETTE) == 768
    assert PALETTE[:15] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128]
    assert color_of(0) == (0, 0, 0)
    assert color_of(5) == (128, 0, 128)
    assert color_of(8) == (64, 0, 0)
    assert color_of(255) == (224, 224, 192)


def test_write_then_read_palette_mask(tmp_path):
    labels = labels_two_objects()
    write_mask(tmp_path / "m.png", labels)
    img = Image.open(tmp_path / "m.png")
    assert img.mode == "P" and img.getpalette()[:12] == PALETTE[:12]
    assert np.array_equal(read_first_mask(tmp_path / "m.png", size=(W, H)), labels)
    assert np.array_equal(read_mask(tmp_path / "m.png"), labels)


@pytest.mark.parametrize("top_id, bits", [(0, 1), (1, 1), (2, 2), (3, 2), (4, 4), (15, 4), (16, 8), (MAX_OBJECTS, 8)])
def test_masks_are_written_with_the_bits_their_ids_need(tmp_path, top_id, bits):
    labels = np.zeros((H, W), np.uint8)
    for i in range(1, top_id + 1):
        labels[i % H, : i % W + 1] = i
    write_mask(tmp_path / "m.png", labels)
    assert (tmp_path / "m.png").read_bytes()[24] == bits  # the bit depth in the PNG's IHDR chunk
    img = Image.open(tmp_path / "m.png")
    assert img.mode == "P" and np.array_equal(np.array(img), labels)
    colours = np.array(PALETTE, np.uint8).reshape(256, 3)[labels]
    assert np.array_equal(np.array(img.convert("RGB")), colours)  # each object keeps its DAVIS colour


def test_equal_labels_give_equal_files(tmp_path):
    # A new version redraws the overlay only where a mask file's bytes changed (versions.overlay_reuse).
    labels = labels_two_objects()
    write_mask(tmp_path / "a.png", labels)
    write_mask(tmp_path / "b.png", labels.copy())
    write_mask(tmp_path / "c.png", labels.astype(np.int64))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes() == (tmp_path / "c.png").read_bytes()


def test_void_index_is_background(tmp_path):
    labels = labels_two_objects()
    labels[0:5] = 255
    write_mask(tmp_path / "void.png", labels)
    got = read_first_mask(tmp_path / "void.png")
    assert set(np.unique(got).tolist()) == {0, 1, 3}


@pytest.mark.parametrize("on", [255, 1])
def test_binary_greyscale_is_object_one(tmp_path, on):
    mask = (binary() > 0).astype(np.uint8) * on
    Image.fromarray(mask).save(tmp_path / "b.png")
    got = read_first_mask(tmp_path / "b.png", size=(W, H))
    assert got.dtype == np.uint8 and np.array_equal(got, (mask > 0).astype(np.uint8))


def test_full_mask_is_allowed(tmp_path):
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(tmp_path / "full.png")
    assert read_first_mask(tmp_path / "full.png").all()


def test_rgb_with_palette_colours_maps_to_ids(tmp_path):
    labels = labels_two_objects()
    rgb = np.array(PALETTE, np.uint8).reshape(256, 3)[labels]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(read_first_mask(tmp_path / "rgb.png"), labels)


def test_black_and_white_rgb_is_binary(tmp_path):
    Image.fromarray(binary()).convert("RGB").save(tmp_path / "bw.png")
    assert np.array_equal(read_first_mask(tmp_path / "bw.png"), (binary() > 0).astype(np.uint8))


def antialiased():
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (32, 24), 12, 255, -1, lineType=cv2.LINE_AA)
    return mask


def coloured_rgb():
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[12:30, 20:44] = (250, 40, 30)  # a hand-picked red, not a palette colour
    return rgb


def test_antialiased_grey_mask_is_rejected_then_binarized(tmp_path):
    Image.fromarray(antialiased()).save(tmp_path / "aa.png")
    with pytest.raises(InputError, match=r"grey levels.*0 and 255.*binarize"):
        read_first_mask(tmp_path / "aa.png")
    got = read_first_mask(tmp_path / "aa.png", binarize=True)
    assert np.array_equal(got, (antialiased() >= 128).astype(np.uint8))


def test_rgb_mask_is_rejected_then_binarized(tmp_path):
    Image.fromarray(coloured_rgb()).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match=r"RGB mask.*palette PNG.*binarize"):
        read_first_mask(tmp_path / "rgb.png")
    got = read_first_mask(tmp_path / "rgb.png", binarize=True)
    assert got.sum() == 18 * 24 and set(np.unique(got).tolist()) == {0, 1}


def test_transparent_background_counts_as_background(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the object is opaque
    rgba[12:30, 20:44, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_first_mask(tmp_path / "rgba.png").sum() == 18 * 24


def test_wrong_size_names_both_sizes(tmp_path):
    write_mask(tmp_path / "m.png", labels_two_objects())
    with pytest.raises(InputError, match="64x48.*video is 80x60"):
        read_first_mask(tmp_path / "m.png", size=(80, 60))


def test_empty_mask(tmp_path):
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="no object"):
        read_first_mask(tmp_path / "empty.png")


def test_sixteen_bit_png(tmp_path):
    Image.fromarray(binary().astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    with pytest.raises(InputError, match="16-bit.*8-bit"):
        read_first_mask(tmp_path / "grey16.png")
    # PIL would quietly reduce 16-bit RGB to 8 bits: the header check still catches it.
    cv2.imwrite(str(tmp_path / "rgb16.png"), np.stack([binary().astype(np.uint16) * 257] * 3, -1))
    with pytest.raises(InputError, match="16-bit"):
        read_first_mask(tmp_path / "rgb16.png")
    assert read_mask(tmp_path / "grey16.png").sum() == 18 * 24


def test_jpeg_named_png(tmp_path):
    Image.fromarray(binary()).save(tmp_path / "mask.png", format="JPEG")
    with pytest.raises(InputError, match="JPEG.*not a PNG"):
        read_first_mask(tmp_path / "mask.png")


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_first_mask(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputError, match="not a readable image"):
        read_first_mask(tmp_path / "text.png")


def test_read_mask_is_lenient(tmp_path):
    Image.fromarray(antialiased()).save(tmp_path / "aa.png")
    assert np.array_equal(read_mask(tmp_path / "aa.png"), (antialiased() >= 128).astype(np.uint8))
    Image.fromarray(coloured_rgb()).save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png").sum() == 18 * 24


def test_write_mask_rejects_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="0..255"):
        write_mask(tmp_path / "x.png", np.full((4, 4), 300))
    with pytest.raises(ValueError, match="0..255"):  # not wrapped round to 255, which reads back as background
        write_mask(tmp_path / "x.png", np.full((4, 4), -1))
    with pytest.raises(ValueError, match="2-D"):
        write_mask(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert not (tmp_path / "x.png").exists()
    write_mask(tmp_path / "sub" / "ok.png", np.ones((4, 4), np.int64))
    assert read_mask(tmp_path / "sub" / "ok.png").sum() == 16


def masks_folder(tmp_path, named: dict[str, np.ndarray]):
    folder = tmp_path / "masks"
    folder.mkdir(exist_ok=True)
    for name, labels in named.items():
        write_mask(folder / name, labels)
    return folder


def one_object(object_id, rows=slice(5, 15)):
    labels = np.zeros((H, W), np.uint8)
    labels[rows, 10 * object_id : 10 * object_id + 8] = object_id
    return labels


def test_one_png_is_frame_zeros_mask(tmp_path):
    write_mask(tmp_path / "m.png", labels_two_objects())
    masks = read_masks(tmp_path / "m.png", size=(W, H), frame_count=3)
    assert masks.frames == [0] and masks.starts == {1: 0, 3: 0} and masks.at(1) is None
    assert np.array_equal(masks.at(0), labels_two_objects())


def test_a_folder_of_masks_named_by_frame(tmp_path):
    folder = masks_folder(
        tmp_path, {"00000.png": one_object(1), "00005.png": one_object(2), "7.png": one_object(3)}
    )
    (folder / "notes.txt").write_text("other files are left alone")
    masks = read_masks(folder, size=(W, H), frame_count=8)
    assert masks.frames == [0, 5, 7]
    assert masks.starts == {1: 0, 2: 5, 3: 7} and masks.first_ids == [1] and masks.object_ids == [1, 2, 3]
    assert np.array_equal(masks.at(5), one_object(2)) and masks.at(6) is None


def test_a_frames_folders_masks_may_use_the_frames_own_names(tmp_path):
    folder = masks_folder(tmp_path, {"img_001.png": one_object(1), "img_004.png": one_object(2)})
    names = [f"img_{i:03d}" for i in range(1, 9)]  # 1-based names: img_004 is frame 3
    assert read_masks(folder, size=(W, H), frame_count=8, frame_names=names).starts == {1: 0, 2: 3}
    with pytest.raises(
        InputError, match=r"img_001.png: mask is not named by a frame.*like its frame \(a.png for frame 0"
    ):
        read_masks(folder, size=(W, H), frame_count=8, frame_names=["a", "b"])


def test_a_later_mask_may_redraw_a_known_object(tmp_path):
    folder = masks_folder(tmp_path, {"00000.png": one_object(1), "00002.png": one_object(1, slice(20, 30))})
    assert read_masks(folder, size=(W, H), frame_count=4).starts == {1: 0}


@pytest.mark.parametrize(
    "named, message",
    [
        ({"00003.png": 1}, r"no mask for frame 0 \(00000.png\)"),
        ({"00000.png": 1, "00009.png": 2}, r"00009.png: names frame 9, but the video has 4 frame\(s\) \(0 to 3\)"),
        ({"00000.png": 1, "later.png": 2}, r"later.png: mask is not named by a frame.*00005.png"),
        ({"00000.png": 1, "2.png": 2, "00002.png": 3}, "00002.png and 2.png: both name frame 2"),
        ({"00000.png": 1, "00002.png": 0}, "00002.png: mask has no object.*leave the file out"),
        ({"00000.png": 1, "00002.png": "small"}, r"00002.png: mask is 32x24 but the video is 64x48"),
        ({"00000.png": 1, "00002.jpg": 2}, "00002.jpg: is not a PNG"),
        ({}, "is a folder with no PNG masks"),
    ],
    ids=["no_frame_0", "beyond_the_end", "not_a_number", "two_for_one_frame", "empty_later", "wrong_size",
         "jpeg", "empty_folder"],
)  # fmt: skip
def test_bad_masks_folders(tmp_path, named, message):
    folder = tmp_path / "masks"
    folder.mkdir()
    for name, what in named.items():
        if what == "small":
            write_mask(folder / name, np.ones((24, 32), np.uint8))
        elif name.endswith(".jpg"):
            Image.fromarray(one_object(what) * 100).save(folder / name)
        else:
            write_mask(folder / name, one_object(what) if what else np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match=message):
        read_masks(folder, size=(W, H), frame_count=4)


def test_objects_over_the_limit_across_masks(tmp_path):
    many = np.zeros((H, W), np.uint8)
    many.reshape(-1)[:MAX_OBJECTS] = np.arange(1, MAX_OBJECTS + 1)
    folder = masks_folder(
        tmp_path, {"00000.png": many, "00001.png": np.full((H, W), MAX_OBJECTS + 1, np.uint8)}
    )
    with pytest.raises(InputError, match=f"00001.png: brings the objects to {MAX_OBJECTS + 1}; at most"):
        read_masks(folder, size=(W, H))
