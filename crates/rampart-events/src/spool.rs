//! A durable, bounded, ordered buffer on local disk: what a SIEM sink has not delivered yet
//! survives an outage of the SIEM and a restart of the gateway.
//!
//! The directory holds segment files `NNNNNNNNNNNNNNNNNNNN.seg`, oldest first, each a run of
//! records `length u32 LE | crc32 u32 LE | payload`; `cursor` names the first record not yet
//! delivered (`seq offset`); `lock` is held exclusively while a gateway uses the directory,
//! so two processes never interleave their writes. A corrupt tail found at open (a torn
//! write, a damaged disk) is moved to a `.corrupt` file beside its segment and reported.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: u64 = 8;
/// A longer record is taken for corruption: an event is a few KiB at most.
pub const MAX_RECORD: usize = 1 << 20;

/// Where the first undelivered record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// The segment's number.
    pub seq: u64,
    /// Bytes from the segment's start.
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    records: u64,
}

/// Records read from the cursor on, not yet acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    /// The payloads, oldest first.
    pub records: Vec<Vec<u8>>,
    end: Option<Pos>,
}

/// The buffer of one sink.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// The newest segment, appended to.
    tail: File,
    cursor: Pos,
    /// Records before the cursor in its segment (what a dropped segment held is the rest).
    cursor_records: u64,
    reader: Option<(u64, File)>,
    total_bytes: u64,
    total_records: u64,
    dirty: bool,
    scratch: Vec<u8>,
    _lock: File,
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Reads records from `r` until the end or the first one that is not whole and intact;
/// returns the byte length of the good prefix, its record count, and the boundaries at or
/// below `snap` (the last one is where a cursor inside this segment belongs).
fn scan(r: &mut impl Read, snap: u64) -> std::io::Result<(u64, u64, u64)> {
    let mut good = 0u64;
    let mut records = 0u64;
    let mut snapped = 0u64;
    let mut header = [0u8; HEADER as usize];
    let mut payload = Vec::new();
    loop {
        if good <= snap {
            snapped = good;
        }
        match read_full(r, &mut header)? {
            0 => break,
            n if n < header.len() => break,
            _ => {}
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_RECORD {
            break;
        }
        payload.resize(len, 0);
        if read_full(r, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            break;
        }
        good += HEADER + len as u64;
        records += 1;
    }
    Ok((good, records, snapped))
}

/// The intact length and the record count of a segment file (for checks from outside).
pub fn check_segment(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = std::io::BufReader::new(File::open(path)?);
    scan(&mut f, 0).map(|(good, records, _)| (good, records))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Spool {
    /// Opens (or creates) the buffer in `dir`, holding at most `max_bytes` of records.
    /// Returns what had to be repaired, one sentence each.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Spool, Vec<String>), String> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open", &lock_path, e))?;
        lock.try_lock().map_err(|_| {
            format!(
                "{} is in use by another process (each sink needs its own buffer directory)",
                dir.display()
            )
        })?;
        let mut notes = Vec::new();
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io_err("cannot list", dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let cursor_path = dir.join("cursor");
        let mut cursor = match std::fs::read_to_string(&cursor_path) {
            Ok(text) => {
                let mut it = text.split_ascii_whitespace().map(|s| s.parse::<u64>());
                match (it.next(), it.next(), it.next()) {
                    (Some(Ok(seq)), Some(Ok(offset)), None) => Some(Pos { seq, offset }),
                    _ => {
                        notes.push(format!(
                            "{} was unreadable; delivery restarts from the oldest buffered event",
                            cursor_path.display()
                        ));
                        None
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("cannot read", &cursor_path, e)),
        };
        // Segments wholly before the cursor were delivered (a crash came before their removal).
        if let Some(c) = cursor {
            for &s in seqs.iter().filter(|&&s| s < c.seq) {
                let _ = std::fs::remove_file(seg_path(dir, s));
            }
            seqs.retain(|&s| s >= c.seq);
            if seqs.first() != Some(&c.seq) {
                cursor = None;
            }
        }
        let mut segments = VecDeque::new();
        let mut cursor_records = 0;
        for &seq in &seqs {
            let path = seg_path(dir, seq);
            let mut f = File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
            let len = f
                .metadata()
                .map_err(|e| io_err("cannot read", &path, e))?
                .len();
            let snap = match cursor {
                Some(c) if c.seq == seq => c.offset,
                _ => 0,
            };
            let (good, records, snapped) = scan(&mut std::io::BufReader::new(&mut f), snap)
                .map_err(|e| io_err("cannot read", &path, e))?;
            if good < len {
                let aside = dir.join(format!("{seq:020}.{}.corrupt", unix_now()));
                let mut bytes = Vec::new();
                f.seek(SeekFrom::Start(good))
                    .and_then(|_| f.read_to_end(&mut bytes))
                    .map_err(|e| io_err("cannot read", &path, e))?;
                std::fs::write(&aside, &bytes).map_err(|e| io_err("cannot write", &aside, e))?;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|w| w.set_len(good))
                    .map_err(|e| io_err("cannot truncate", &path, e))?;
                notes.push(format!(
                    "{}: {} bytes after its {records} intact events were damaged and set aside in {}",
                    path.display(),
                    len - good,
                    aside.display()
                ));
            }
            if let Some(c) = cursor.as_mut() {
                if c.seq == seq {
                    if snapped != c.offset {
                        notes.push(format!(
                            "{} pointed inside an event; delivery restarts at the event before",
                            cursor_path.display()
                        ));
                    }
                    c.offset = snapped;
                    // Counting the records before the cursor needs a second pass.
                    let mut f = File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
                    cursor_records = scan(&mut std::io::Read::take(&mut f, snapped), u64::MAX)
                        .map_err(|e| io_err("cannot read", &path, e))?
                        .1;
                }
            }
            segments.push_back(Segment {
                seq,
                bytes: good,
                records,
            });
        }
        if segments.is_empty() {
            segments.push_back(Segment {
                seq: cursor.map_or(0, |c| c.seq),
                bytes: 0,
                records: 0,
            });
        }
        let first = segments.front().expect("one segment").seq;
        let cursor = cursor.unwrap_or(Pos {
            seq: first,
            offset: 0,
        });
        let last = segments.back().expect("one segment").seq;
        let tail_path = seg_path(dir, last);
        let tail = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&tail_path)
            .map_err(|e| io_err("cannot open", &tail_path, e))?;
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        let total_records = segments.iter().map(|s| s.records).sum();
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            // Several segments, so dropping the oldest frees a part, not everything.
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            segments,
            tail,
            cursor,
            cursor_records,
            reader: None,
            total_bytes,
            total_records,
            dirty: false,
            scratch: Vec::new(),
            _lock: lock,
        };
        Ok((spool, notes))
    }

    /// Events buffered and not delivered yet.
    pub fn pending(&self) -> u64 {
        self.total_records - self.cursor_records
    }

    /// Bytes the buffer's segments hold.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Whether a record of `len` bytes fits without dropping anything.
    pub fn fits(&self, len: usize) -> bool {
        self.total_bytes + HEADER + len as u64 <= self.max_bytes
    }

    /// Appends one record. The caller checks [`Spool::fits`] first; a failed write leaves
    /// the segment as it was.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        if payload.is_empty() || payload.len() > MAX_RECORD {
            return Err(format!(
                "an event of {} bytes cannot be buffered",
                payload.len()
            ));
        }
        let size = HEADER + payload.len() as u64;
        let tail_bytes = self.segments.back().expect("one segment").bytes;
        if tail_bytes > 0 && tail_bytes + size > self.segment_bytes {
            self.rotate()?;
        }
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.scratch
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.scratch.extend_from_slice(payload);
        let seg = self.segments.back_mut().expect("one segment");
        if let Err(e) = self.tail.write_all(&self.scratch) {
            // Cut a partial record off so the segment stays readable.
            let _ = self.tail.set_len(seg.bytes);
            return Err(io_err("cannot write", &seg_path(&self.dir, seg.seq), e));
        }
        seg.bytes += size;
        seg.records += 1;
        self.total_bytes += size;
        self.total_records += 1;
        self.dirty = true;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        self.sync()?;
        let seq = self.segments.back().expect("one segment").seq + 1;
        let path = seg_path(&self.dir, seq);
        self.tail = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err("cannot create", &path, e))?;
        self.segments.push_back(Segment {
            seq,
            bytes: 0,
            records: 0,
        });
        Ok(())
    }

    /// Drops the oldest segments until a record of `len` bytes fits; returns how many
    /// undelivered events went with them.
    pub fn drop_oldest(&mut self, len: usize) -> u64 {
        let mut lost = 0;
        while !self.fits(len) {
            if self.segments.len() == 1 && (self.segments[0].bytes == 0 || self.rotate().is_err()) {
                break;
            }
            lost += self.segments[0].records - self.cursor_records;
            // The cursor is saved before the file goes: if saving fails, the segment stays
            // on disk and a restart reads it again (counted lost, yet delivered).
            let _ = self.advance_segment();
        }
        lost
    }

    /// Makes what was appended durable against a power loss.
    pub fn sync(&mut self) -> Result<(), String> {
        if self.dirty {
            let seq = self.segments.back().expect("one segment").seq;
            self.tail
                .sync_data()
                .map_err(|e| io_err("cannot sync", &seg_path(&self.dir, seq), e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Up to `max` records from the cursor on, within one segment.
    pub fn peek(&mut self, max: usize) -> Result<Batch, String> {
        if self.cursor.offset >= self.segments[0].bytes {
            if self.segments.len() == 1 {
                return Ok(Batch::default());
            }
            // The oldest segment is delivered and a newer one exists: move on.
            self.advance_segment()?;
        }
        let (seq, end) = (self.segments[0].seq, self.segments[0].bytes);
        let path = seg_path(&self.dir, seq);
        if self.reader.as_ref().map(|r| r.0) != Some(seq) {
            let f = File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
            self.reader = Some((seq, f));
        }
        let f = &mut self.reader.as_mut().expect("opened").1;
        let mut offset = self.cursor.offset;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io_err("cannot read", &path, e))?;
        let mut r = std::io::BufReader::new(Read::by_ref(f).take(end - offset));
        let mut batch = Batch::default();
        let mut header = [0u8; HEADER as usize];
        let damaged = |at: u64| format!("{}: a damaged event at byte {at}", path.display());
        while batch.records.len() < max && offset < end {
            if read_full(&mut r, &mut header).map_err(|e| io_err("cannot read", &path, e))?
                < header.len()
            {
                return Err(damaged(offset));
            }
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            if len == 0 || len > MAX_RECORD {
                return Err(damaged(offset));
            }
            let mut payload = vec![0u8; len];
            if read_full(&mut r, &mut payload).map_err(|e| io_err("cannot read", &path, e))? < len
                || crc32fast::hash(&payload) != crc
            {
                return Err(damaged(offset));
            }
            offset += HEADER + len as u64;
            batch.records.push(payload);
        }
        batch.end = Some(Pos { seq, offset });
        Ok(batch)
    }

    /// Skips a segment whose records could not be read (the caller has reported it).
    pub fn skip_segment(&mut self) -> Result<u64, String> {
        let seg = &self.segments[0];
        let lost = seg.records - self.cursor_records;
        if self.segments.len() == 1 {
            self.rotate()?;
        }
        self.cursor.offset = self.segments[0].bytes;
        self.cursor_records = self.segments[0].records;
        self.advance_segment()?;
        Ok(lost)
    }

    fn advance_segment(&mut self) -> Result<(), String> {
        let old = self.segments.pop_front().expect("two segments");
        self.total_bytes -= old.bytes;
        self.total_records -= old.records;
        self.cursor = Pos {
            seq: self.segments[0].seq,
            offset: 0,
        };
        self.cursor_records = 0;
        self.reader = None;
        self.save_cursor()?;
        let _ = std::fs::remove_file(seg_path(&self.dir, old.seq));
        Ok(())
    }

    /// Marks a batch from [`Spool::peek`] delivered. A batch whose segment was dropped
    /// meanwhile (the buffer was full) is ignored.
    pub fn ack(&mut self, batch: &Batch) -> Result<(), String> {
        let Some(end) = batch.end else {
            return Ok(());
        };
        if end.seq != self.cursor.seq || end.offset <= self.cursor.offset {
            return Ok(());
        }
        self.cursor.offset = end.offset;
        self.cursor_records += batch.records.len() as u64;
        self.save_cursor()
    }

    /// The cursor is replaced atomically: a crash leaves the old one or the new one.
    fn save_cursor(&self) -> Result<(), String> {
        let tmp = self.dir.join("cursor.tmp");
        let path = self.dir.join("cursor");
        std::fs::write(
            &tmp,
            format!("{} {}\n", self.cursor.seq, self.cursor.offset),
        )
        .map_err(|e| io_err("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("cannot replace", &path, e))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rampart-spool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn drain(s: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let b = s.peek(7).unwrap();
            if b.records.is_empty() {
                return out;
            }
            out.extend(
                b.records
                    .iter()
                    .map(|r| String::from_utf8(r.clone()).unwrap()),
            );
            s.ack(&b).unwrap();
        }
    }

    #[test]
    fn keeps_order_across_segments_and_reopen() {
        let d = dir("order");
        let (mut s, notes) = Spool::open(&d, 1 << 20).unwrap();
        assert!(notes.is_empty());
        let rec = |i: usize| format!("{i:05}{}", "x".repeat(1000));
        for i in 0..300 {
            s.append(rec(i).as_bytes()).unwrap();
        }
        assert!(s.segments.len() > 2, "{}", s.segments.len());
        let b = s.peek(10).unwrap();
        s.ack(&b).unwrap();
        // Not acknowledged: delivered again after a restart.
        let _unacked = s.peek(10).unwrap();
        drop(s);
        let (mut s, notes) = Spool::open(&d, 1 << 20).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(s.pending(), 290);
        let got = drain(&mut s);
        assert_eq!(got.len(), 290);
        for (k, r) in got.iter().enumerate() {
            assert_eq!(r, &rec(k + 10));
        }
        assert_eq!(s.pending(), 0);
        // Delivered segments are gone from disk.
        let segs = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
            .count();
        assert_eq!(segs, 1);
    }

    #[test]
    fn second_process_is_refused() {
        let d = dir("lock");
        let (_s, _) = Spool::open(&d, 1 << 20).unwrap();
        let e = Spool::open(&d, 1 << 20).unwrap_err();
        assert!(e.contains("in use by another process"), "{e}");
    }

    #[test]
    fn full_buffer_drops_the_oldest_and_counts_them() {
        let d = dir("full");
        let (mut s, _) = Spool::open(&d, 1 << 20).unwrap();
        let payload = vec![b'a'; 1000];
        let mut lost = 0;
        for _ in 0..3000 {
            if !s.fits(payload.len()) {
                lost += s.drop_oldest(payload.len());
            }
            s.append(&payload).unwrap();
        }
        assert!(s.bytes() <= 1 << 20);
        assert_eq!(lost + s.pending(), 3000);
        assert!(lost > 1000, "{lost}");
        assert_eq!(drain(&mut s).len() as u64, 3000 - lost);
    }

    #[test]
    fn damaged_tail_is_set_aside_and_the_rest_kept() {
        let d = dir("corrupt");
        let (mut s, _) = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..5 {
            s.append(format!("event {i}").as_bytes()).unwrap();
        }
        drop(s);
        let seg = seg_path(&d, 0);
        let mut bytes = std::fs::read(&seg).unwrap();
        // Damage the fourth record's payload, then append garbage.
        let fourth = 3 * (HEADER as usize + 7) + HEADER as usize;
        bytes[fourth] ^= 0xff;
        bytes.extend_from_slice(b"\xde\xad\xbe\xef garbage");
        std::fs::write(&seg, &bytes).unwrap();
        std::fs::write(d.join("cursor"), "not a cursor").unwrap();
        let (mut s, notes) = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("unreadable")), "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("after its 3 intact events") && n.contains(".corrupt")),
            "{notes:?}"
        );
        assert_eq!(drain(&mut s), ["event 0", "event 1", "event 2"]);
        let aside = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".corrupt"))
            .expect("set aside");
        assert!(std::fs::read(aside.path()).unwrap().ends_with(b" garbage"));
        // Appending after the repair still reads back.
        s.append(b"after").unwrap();
        assert_eq!(drain(&mut s), ["after"]);
    }

    #[test]
    fn cursor_inside_a_record_snaps_back() {
        let d = dir("snap");
        let (mut s, _) = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..4 {
            s.append(format!("event {i}").as_bytes()).unwrap();
        }
        drop(s);
        std::fs::write(d.join("cursor"), format!("0 {}", HEADER + 7 + 3)).unwrap();
        let (mut s, notes) = Spool::open(&d, 1 << 20).unwrap();
        assert!(notes[0].contains("inside an event"), "{notes:?}");
        assert_eq!(s.pending(), 3);
        assert_eq!(drain(&mut s), ["event 1", "event 2", "event 3"]);
    }
}
