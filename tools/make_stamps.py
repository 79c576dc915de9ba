"""Build ``data/stamps/``, notebook 07's colour few-shot task, from the Debian package ``tuxpaint-stamps-default``.

    apt-get download tuxpaint-stamps-default          # 161 MB; any Debian mirror, checked by its sha256
    python tools/make_stamps.py tuxpaint-stamps-default_2022.06.04-1_all.deb [--out data/stamps] [--size 128]

The course ships the result (students on macOS/Windows have no apt); this script only says how it was made.
It reads the .deb with the standard library (ar + tar.xz, no dpkg needed), keeps the photo stamps of five
categories (drawings, toys and files whose upstream credit names the GFDL are left out: ``EXCLUDED``),
composites each RGBA stamp over white, pads it to a square with white, resizes it so the square has ``size``
pixels a side (Pillow LANCZOS) and writes ``<out>/<category>/<name>.jpg`` (quality 90) and ``<out>/MANIFEST.csv``
(source path, source size, sha256 of the source PNG, credit). Same .deb, same files, byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import tarfile
from pathlib import Path, PurePosixPath

from PIL import Image

DEB_NAME = "tuxpaint-stamps-default_2022.06.04-1_all.deb"
DEB_SHA256 = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"  # Debian 12 (bookworm) Packages
ROOT = "usr/share/tuxpaint/stamps/"

# category -> folders under ROOT whose PNGs it takes (sub-folders included)
CATEGORIES = {
    "birds": ["animals/birds"],
    "flowers": ["plants/flowers"],
    "fruit": ["food/fruit"],
    "mammals": ["animals/mammals"],
    "vegetables": ["food/vegetables"],
}

# left out, with the reason (paths relative to ROOT; a folder excludes everything below it)
EXCLUDED = {
    "animals/birds/cartoon": "drawings (Tux, cartoon penguins)",
    "animals/mammals/bears/cartoon": "drawing (teddy bear)",
    "animals/mammals/bears/toys": "a toy, not a mammal",
    "animals/mammals/cats/cartoon": "a toy lion doll",
    "animals/mammals/hedgehog.png": "drawing",
    "animals/mammals/echidna.png": "black silhouette drawing",
    "food/fruit/cartoon": "drawings",
    "plants/flowers/plastic": "a plastic flower",
    "animals/mammals/aquatic/otter.png": "upstream credit: Wikimedia Commons, GFDL 1.2",
    "animals/birds/helmeted_guineafowl.png": "upstream credit: Wikimedia Commons, GFDL",
    "food/fruit/Apricot_whole.png": "upstream credit: Wikimedia Commons, GFDL",
    "food/fruit/Cherry_Stella.png": "upstream credit: Wikimedia Commons, GFDL",
    "food/fruit/Strawberry2.png": "upstream credit: Wikimedia Commons, GFDL",
    "food/fruit/apricot.png": "upstream credit: Wikimedia Commons (Apricot_fruit.jpg), GFDL",
}

# credits that upstream's docs/CONTRIBUTORS.txt and CHANGES.txt give for single stamps (file stem -> credit)
_CHILDSPLAY = ("Childsplay (GPL, (c) 2002-2005 Stas Zytkiewicz), adapted for Tux Paint by Pere Pujal i Carabantes")
_MUDCHUTE = ("Caroline Ford, Mudchute Park and Farm, London (GFDL, CC BY-SA and GPL)")
_GOERNER = "Chris Goerner"
_KERALA = "VHSS Irimpanam school, Kerala, via Vimal Joseph (CC BY-SA 3.0)"
CREDITS = {
    **{stem: _CHILDSPLAY for stem in (
        "badger bear beaver bison blackbird bull camel caribou chimp cow crow cuckoo deer doe dog dolphin donkey "
        "dromedary duck elephant ferret fox gander giraffe goat gorilla hen hippopotamus horse lark lion marmot "
        "mountaingoat mouse nandou orca owl penguin pig quetzal rabbit ram rooster seagull squirrel tiger tucan "
        "turkey vulture whale yak zebra").split()},
    **{stem: _MUDCHUTE for stem in "chicken_profile cow_white donkey_eating sheep rabbit_little sheep_lamb "
                                   "pig_golden pig_golden2 drake daffodil".split()},
    **{stem: _GOERNER for stem in "lemon mandarine yellow-flower pigface adelaide-rosella dingo little-penguin "
                                  "magpie rainbow-lorikeet silver-gull".split()},
    **{stem: "Erinn Lynch (CC BY-SA 2.5)" for stem in ("pelican", "heron_greatblue", "heron_greatblue_flying")},
    **{stem: _KERALA for stem in ("adeenia", "anthoorium", "appooppanthady", "bolsom", "chemparathi")},
    "grapes": "Boris Matovic (stock.xchng)",
    "sliced_orange": "Ahmed Al-Shukaili (stock.xchng)",
    "sliced_lime": "Peter Malinowsky (stock.xchng)",
    "pineapple": "Mike Fitzpatrick (stock.xchng)",
    "potato": "George Wong",
    "broccoli": "Steve Karg (public domain)",
    "corn": "Steve Karg (public domain)",
}


def _members(deb: bytes) -> dict[str, bytes]:
    """The members of an ar archive (a .deb) by name."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a .deb (ar archive)")
    members, pos = {}, 8
    while pos + 60 <= len(deb):
        header = deb[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        members[name] = deb[pos + 60:pos + 60 + size]
        pos += 60 + size + size % 2
    return members


def _excluded(path: str) -> bool:
    return any(path == e or path.startswith(e + "/") for e in EXCLUDED)


def _category(path: str) -> str | None:
    for category, folders in CATEGORIES.items():
        if any(path.startswith(f + "/") for f in folders):
            return category
    return None


def square_on_white(png: bytes, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """A stamp composited over white, padded to a white square and resized to ``size`` x ``size``."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        original = image.size
        rgba = image.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    side = max(flat.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(flat, ((side - flat.width) // 2, (side - flat.height) // 2))
    return square.resize((size, size), Image.LANCZOS), original


def build(deb_path: Path, out: Path, size: int) -> list[dict[str, str]]:
    deb = deb_path.read_bytes()
    digest = hashlib.sha256(deb).hexdigest()
    if digest != DEB_SHA256:
        raise SystemExit(f"{deb_path} has sha256 {digest}, expected {DEB_SHA256} ({DEB_NAME})")
    data = _members(deb)["data.tar.xz"]
    for old in [*out.glob("*/*.jpg"), out / "MANIFEST.csv"]:  # a rebuild leaves no stale images (other files stay)
        old.unlink(missing_ok=True)
    rows = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            path = str(PurePosixPath(member.name)).lstrip("./")
            if not (member.isfile() and path.startswith(ROOT) and path.endswith(".png")):
                continue
            rel = path[len(ROOT):]
            category = _category(rel)
            if category is None or _excluded(rel):
                continue
            png = tar.extractfile(member).read()
            image, original = square_on_white(png, size)
            stem = PurePosixPath(rel).stem
            target = out / category / f"{stem}.jpg"
            if target.exists():
                raise SystemExit(f"two stamps named {stem} in {category}")
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=90, optimize=True)
            rows.append({"file": f"{category}/{stem}.jpg", "category": category, "source": path,
                         "source_size": f"{original[0]}x{original[1]}", "source_sha256": hashlib.sha256(png).hexdigest(),
                         "credit": CREDITS.get(stem, "")})
    with open(out / "MANIFEST.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deb", type=Path, help=f"the downloaded {DEB_NAME}")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "stamps")
    parser.add_argument("--size", type=int, default=128, help="side of the square images in pixels (default 128)")
    args = parser.parse_args()
    rows = build(args.deb, args.out, args.size)
    counts = {c: sum(r["category"] == c for r in rows) for c in CATEGORIES}
    print(f"{len(rows)} images in {args.out}: {counts}")


if __name__ == "__main__":
    main()
