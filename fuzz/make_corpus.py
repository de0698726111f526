#!/usr/bin/env python3
"""make_corpus - writes the seed corpus of every fuzz target (fuzz/corpus/).

Valid and invalid examples of each input surface, built from
proto/PROTOCOL.md and docs/JOURNAL.md (not copied from the programs), in
the input formats the targets' banner comments describe. Run it again after
changing a format: `python3 fuzz/make_corpus.py` (it rewrites the files).
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')


def rec(tag, value):
    """One wire record: a tag byte and a big-endian signed int64."""
    return tag.encode() + struct.pack('>q', value)


def recs(*pairs):
    return b''.join(rec(tag, value) for tag, value in pairs)


def pub(tag, values, seq, tag_seq):
    """A publication: data records of one tag, then S seq, T tag-seq."""
    return recs(*[(tag, v) for v in values]) + recs(('S', seq), ('T', tag_seq))


def le16(n):
    return struct.pack('<H', n)


def le32(n):
    return struct.pack('<I', n)


def le64(n):
    return struct.pack('<q', n)


def crc32c(data, crc=0):
    """CRC32C (Castagnoli), bit by bit: slow and obviously right."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


TAGS_KNOWN = 'NPCAEISTHXRQV'


def mask(accepted):
    """The record target's first byte: one bit per tag of the first eight
    of TAGS_KNOWN (H, X, R, Q: the low bits of the input's length, not set
    here)."""
    return bytes([sum(1 << TAGS_KNOWN.index(t) for t in accepted if TAGS_KNOWN.index(t) < 8)])


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), 'wb') as out:
        out.write(data)


def record_corpus():
    request = recs(('I', 1), ('N', 7), ('N', 8))
    write('record', 'request', mask('NI') + request)
    write('record', 'request-no-id', mask('NI') + recs(('N', -1), ('N', 0)))
    write('record', 'report', mask('IPC') + recs(('I', 5), ('P', 7), ('C', 8)))
    write('record', 'full', mask('NI') + rec('I', 9) + rec('N', 2) * 4096)
    write('record', 'too-many', mask('NI') + rec('N', 2) * 4097)
    write('record', 'empty', mask('NI'))
    write('record', 'short', mask('NI') + b'N\x00\x00\x00\x07')
    write('record', 'unknown-tag', mask('NI') + recs(('N', 1)) + b'Z' + bytes(8))
    write('record', 'refused', mask('NI') + recs(('P', 7)))
    write('record', 'id-alone', mask('NI') + recs(('I', 1)))
    write('record', 'id-second', mask('NI') + recs(('N', 1), ('I', 1)))
    write('record', 'lowercase', mask('NI') + b'n' + bytes(8))


def publication_corpus():
    write('publication', 'numbers', pub('N', [7, 8, 9], 1, 1))
    write('publication', 'primes', pub('P', [2**61 - 1], 40, 7))
    write('publication', 'composites', pub('C', [-5, 0, 1], 3, 2))
    write('publication', 'history-run',
          pub('P', [7], 2, 1) + pub('C', [8], 3, 1) + recs(('A', 4), ('H', 1), ('T', 1)))
    write('publication', 'no-trailer', recs(('P', 7), ('P', 11)))
    write('publication', 'seq-zero', pub('P', [7], 0, 1))
    write('publication', 'mixed-tags', recs(('P', 7), ('C', 8), ('S', 1), ('T', 1)))
    write('publication', 'trailer-swapped', recs(('P', 7), ('T', 1), ('S', 1)))
    write('publication', 'only-trailer', recs(('S', 1), ('T', 1)))


def history_corpus():
    write('history', 'all-primes', recs(('H', 1), ('H', 0), ('P', 0)))
    write('history', 'range-three-tags',
          recs(('H', 5), ('H', 10), ('N', 0), ('P', 0), ('C', 0)))
    write('history', 'stats', recs(('H', 0)))
    write('history', 'from-zero', recs(('H', 0), ('H', 0), ('P', 0)))
    write('history', 'until-before-from', recs(('H', 9), ('H', 3), ('P', 0)))
    write('history', 'tag-twice', recs(('H', 1), ('H', 0), ('P', 0), ('P', 0)))
    write('history', 'tag-value', recs(('H', 1), ('H', 0), ('C', 4)))
    write('history', 'no-tags', recs(('H', 1), ('H', 0)))
    write('history', 'bad-length', recs(('H', 1), ('H', 0)) + b'P')


def event(kind, body=b''):
    return kind.encode() + le16(len(body)) + body


def broker_corpus():
    request = recs(('I', 1), ('N', 7), ('N', 8))
    plain = recs(('N', 11), ('N', 12), ('N', 13))
    # Accept, push, report right (all C), report again, report wrong.
    write('broker', 'accept-push-report',
          b'\x00' + event('N', request) + b'P\x00' + b'V\x00\x00\x00'
          + b'V\x00\x00\x00' + b'V\x00\x00\x01')
    # Two requests merge into one dispatch (coalescing 5 ms), retry by id.
    write('broker', 'merge-retry',
          b'\x05' + event('N', request) + event('N', plain) + event('N', request)
          + b'P\x01' + b'P\x09' + b'V\x00\xff\x00')
    # A lease runs out and the dispatch goes again; a late report.
    write('broker', 'expire-repush',
          b'\x00' + event('N', plain) + b'P\x00' + b'X\xff' + b'P\x00'
          + b'V\x00\x0f\x00' + b'V\x01\x0f\x00')
    # Reports by hand: unknown id, bad count, no id, a P/C for id 1.
    write('broker', 'raw-reports',
          b'\x00' + event('N', request) + b'P\x00'
          + event('R', recs(('I', 99), ('P', 7)))
          + event('R', recs(('I', 1), ('P', 7)))
          + event('R', recs(('P', 7), ('C', 8)))
          + event('R', recs(('I', 1), ('P', 7), ('C', 8))))
    # Bad requests: refused tag, empty, short.
    write('broker', 'bad-requests',
          b'\x00' + event('N', recs(('P', 7))) + event('N') + event('N', b'N\x00')
          + event('N', recs(('I', 3), ('I', 4))))


def frame(kind, arg=b''):
    return bytes([kind]) + arg


def client_corpus():
    request = recs(('I', 1), ('N', 7))
    ack = rec('A', 1)
    # A request and its ack: [tag of slot 0][empty][A 1].
    write('client', 'ack',
          event('S', request) + b'M\x03' + frame(0, b'\x00') + frame(1)
          + frame(2, bytes([len(ack)]) + ack))
    # E 9: parked, sent again after 500 ms, then acked.
    e9 = rec('E', 9)
    write('client', 'later',
          event('S', request) + b'M\x03' + frame(0, b'\x00') + frame(1)
          + frame(2, bytes([len(e9)]) + e9) + b'E\x40'
          + b'M\x03' + frame(0, b'\x00') + frame(1) + frame(2, bytes([len(ack)]) + ack))
    # Malformed replies: no delimiter, a changed tag, too many frames, a long body.
    write('client', 'malformed',
          event('S', request) + event('S', request)
          + b'M\x02' + frame(0, b'\x00') + frame(2, bytes([9]) + ack)
          + b'M\x03' + frame(3, b'\x01\x02') + frame(1) + frame(2, bytes([9]) + ack)
          + b'M\x04' + frame(0, b'\x01') + frame(1) + frame(1) + frame(2, b'\x01A')
          + b'M\x03' + frame(0, b'\x01') + frame(1) + frame(2, bytes([18]) + ack + ack))
    # A reply overdue: Lazy Pirate resends on a new socket, then gives up.
    write('client', 'overdue',
          event('S', request) + b'E\xff' + b'E\xff' + b'E\xff' + b'E\xff')


def sink_config(tags='P', fmt=0, strict=False, from_seq=None, resume=False, count=0):
    bits = sum(1 << 'NPC'.index(t) for t in tags) | (fmt << 3)
    bits |= (0x20 if strict else 0) | (0x40 if from_seq else 0) | (0x80 if resume else 0)
    return bytes([bits]) + le64(from_seq or 0) + bytes([count])


def status(next_seq, oldest, *lasts):
    return recs(('A', next_seq), ('H', oldest), *[('T', last) for last in lasts])


def hreply(body, shape=0):
    """A scripted history reply: shape 0 well formed, 1 no delimiter, 2 an
    extra frame."""
    return b'H' + bytes([shape]) + le16(len(body)) + body


def sink_corpus():
    # Live messages in order, then a gap that history fills.
    fill = pub('P', [13], 5, 3) + status(9, 1, 4)
    write('sink', 'live-gap-filled',
          sink_config('P') + hreply(fill)
          + event('L', pub('P', [7], 1, 1)) + event('L', pub('P', [11], 3, 2))
          + event('L', pub('P', [17], 9, 4)))
    # A gap history cannot fill (E 9): lost, strict.
    write('sink', 'live-gap-lost-strict',
          sink_config('PC', fmt=1, strict=True)
          + event('L', pub('P', [7], 1, 1)) + event('L', pub('C', [8, 9], 6, 4)))
    # --from 1: catch up from history (two chunks), then live, then idle.
    chunk1 = pub('N', [7, 8], 1, 1) + pub('P', [7], 2, 1) + status(3, 1, 1, 1)
    chunk2 = pub('C', [8], 3, 1) + status(4, 1, 1, 1)
    write('sink', 'from-all-csv',
          sink_config('NPC', fmt=2, from_seq=1)
          + hreply(chunk1) + hreply(chunk2)
          + event('L', pub('N', [10], 4, 2)) + b'I')
    # A resume file, partial message, and the broker restarting.
    text = (b'playzmq-sink resume 1\ntag P seq 40 tag-seq 7 partial 2\n'
            b'output dev 2049 ino 1311 size 5120\n')
    write('sink', 'resume-restart',
          sink_config('P', resume=True, count=5) + event('F', text)
          + event('L', pub('P', [2, 3, 5, 7], 40, 7)) + event('L', pub('P', [11], 1, 1)))
    write('sink', 'resume-malformed',
          sink_config('C', resume=True) + event('F', b'playzmq-sink resume 1\ntag C seq x\n'))
    # Malformed: history reply shapes, live garbage.
    bad = pub('P', [13], 5, 3)
    write('sink', 'malformed',
          sink_config('P') + hreply(bad, 1) + hreply(bad, 2)
          + event('L', b'garbage') + event('L', pub('C', [4], 1, 1))
          + event('L', pub('P', [7], 1, 1)) + event('L', pub('P', [17], 9, 4)) + b'I')


def source_corpus():
    write('source', 'numbers', b'1\n2\n97\n-5\n0\n')
    write('source', 'blanks', b'  7  \n\n\t\n 8\r\n')
    write('source', 'extremes', b'9223372036854775807\n-9223372036854775808\n')
    write('source', 'overflow', b'9223372036854775808\n')
    write('source', 'bad', b'abc\n12x\n1 2\n+3\n0x10\n')
    write('source', 'long-line', b'1' * 300 + b'\n5\n')
    write('source', 'no-newline', b'42')
    write('source', 'nul', b'4\x002\n7\n')


def segment_header(first_seq, tag_seqs=(0, 0, 0)):
    # docs/JOURNAL.md: version 5, 96 bytes, 8 tag-seq slots (N P C X R ...).
    tag_seqs = tuple(tag_seqs) + (0,) * (8 - len(tag_seqs))
    head = b'PZJOURNL' + le32(5) + le32(96) + le64(first_seq)
    head += b''.join(le64(t) for t in tag_seqs) + le32(0)
    return head + le32(crc32c(head))


def block(entries, first_seq, last_seq, synced):
    payload = b''.join(le32(len(e)) + e for e in entries)
    head = b'PZBK' + le32(len(payload)) + le64(first_seq) + le64(last_seq)
    head += le32(len(entries)) + le64(synced)
    return head + le32(crc32c(head + payload)) + payload


def journal_corpus():
    # docs/JOURNAL.md's example: accept of 7 and 8 (id 42), then its verdict.
    header = segment_header(1)
    accept = recs(('I', 42), ('N', 7), ('N', 8), ('S', 1), ('T', 1))
    first = block([accept], 1, 1, 96)
    verdict = [recs(('K', 1), ('P', 7), ('S', 2), ('T', 1)), recs(('C', 8), ('S', 3), ('T', 1))]
    second = block(verdict, 2, 3, 96 + len(first))
    # The same verdict kept as its bits: 7 prime (bit 0), 8 not.
    bits = block([recs(('K', 1), ('V', 1), ('S', 2), ('T', 1), ('S', 3), ('T', 1))],
                 2, 3, 96 + len(first))
    write('journal', 'bits', b'\x00' + header + first + bits)
    flags = b'\x00'
    write('journal', 'example', flags + header + first + second)
    write('journal', 'unverdicted', flags + header + first)
    write('journal', 'torn-tail', flags + header + first + second[:50])
    write('journal', 'bad-crc', flags + header + first[:-1] + bytes([first[-1] ^ 1]) + second)
    # The CRCs fixed by the target (flags 3), a header made by it (flag 8).
    write('journal', 'fixed-crcs', b'\x03' + header + first + second)
    write('journal', 'made-header', b'\x0a' + first + second)
    # Two segments: the second named 4, after seqs 1-3.
    split = len(header + first + second)
    accept2 = recs(('N', 9), ('S', 4), ('T', 2))
    segment2 = segment_header(4, (1, 1, 1)) + block([accept2], 4, 4, 96)
    write('journal', 'two-segments', b'\x04' + le16(split) + le64(4)
          + header + first + second + segment2)
    write('journal', 'empty', b'\x00')
    write('journal', 'header-only', flags + header)
    write('journal', 'torn-header', flags + header[:20])
    write('journal', 'version-1', flags + header[:8] + le32(1) + header[12:])


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    record_corpus()
    publication_corpus()
    history_corpus()
    broker_corpus()
    client_corpus()
    sink_corpus()
    source_corpus()
    journal_corpus()
    for target in sorted(os.listdir(CORPUS)):
        print('%-12s %d files' % (target, len(os.listdir(os.path.join(CORPUS, target)))))


if __name__ == '__main__':
    main()
