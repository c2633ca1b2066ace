#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes tok512.bin: a made-up 512-piece tokenizer in llama2.c's tokenizer.bin format, so that the
# driver test can feed text to stories260K (vocab 512) without its real tok512 tokenizer, which is
# not in ../shared/models. The text it decodes stories260K's output to is not meaningful English;
# it only exercises the text path (encode, chat template, streaming decode, --json).
#
# Layout (Llama 2 order): 0 <unk>, 1 "\n<s>\n" (BOS), 2 "\n</s>\n" (EOS), 3..258 the byte pieces
# <0x00>..<0xFF>, 259.. every printable ASCII character (space first), then merges listed below
# in priority order (score -rank) until 512 pieces. Usage: python3 make_tok512.py [out.bin]
import struct
import sys

# Merges in priority order; "_" stands for a leading space (SentencePiece's dummy prefix / word start).
MERGES = """
_t he _the _a _s in _w _h er an _b nd _and _o _T _The ou _c _f _m ed _p _l _d _S ll _wa _was
_H it re _to _in ar _th en ing _he _L _I _n on _g _go ay _r at _e _k ly im ir _st _sa _ha
_Ti _Tim _li _lo _fr _fri _frie _frien _friend _pl _pla _play _bi _big _da _day _ca
_wi _wit _with _ba _bal _ball _sh _she _her _hi _his _ma _mo _mom _ki _kit _too _ne _new
_tr _tre _tree _lu _lun _lunc _lunch _hap _happ _happy _sm _sma _smal _small _lit _litt
_littl _little _gi _gir _girl _bo _boy _na _nam _name _On _Onc _Once _u _up _upo _upon _ti _tim _time
_ther _there _ve _ver _very _lov _love _lik _like _we _wen _went _ou _out _pa _par _park
_sai _said _fu _fun _do _dog _cat _su _sun _ho _hom _home _loo _look _looke _looked _so _som _some
_fo _fou _foun _found _ga _gam _game _sk _sky _bl _blu _blue _re _red _gr _gre _gree _green _ye
_yes _no _not _can _wan _want _wante _wanted _tog _toge _toget _togeth _togethe _together
_hel _hell _hello _wor _worl _world _He _Hel _Hell _Hello
"""


def pieces():
    out = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    out += [b"<0x%02X>" % b for b in range(256)]
    out += [bytes([c]) for c in range(0x20, 0x7F)]
    seen = set(out)
    merges = []
    for tok in MERGES.split():
        b = tok.replace("_", " ").encode()
        if b not in seen:
            seen.add(b)
            merges.append(b)
    return out, merges


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tok512.bin"
    base, merges = pieces()
    # Every merge must be reachable: some split of it into two existing pieces.
    have = set(base)
    usable = []
    for m in merges:
        if any(m[:i] in have and m[i:] in have for i in range(1, len(m))):
            usable.append(m)
            have.add(m)
    need = 512 - len(base)
    filler = ("%c%c" % (a, b) for a in "etaoinshrdlu" for b in "etaoinshrdlu ")
    while len(usable) < need:
        f = next(filler).encode()
        if f not in have:
            usable.append(f)
            have.add(f)
    usable = usable[:need]
    allp = base + usable
    assert len(allp) == 512
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-1e6] * (len(base) - 259) + [-float(i) for i in range(len(usable))]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(p) for p in allp)))
        for s, p in zip(scores, allp):
            f.write(struct.pack("<fi", s, len(p)))
            f.write(p)


if __name__ == "__main__":
    main()
