//! Chunk planning for checksums (pure): key boundaries become ranges that cover the whole key
//! space, and each range becomes a WHERE clause with bound values.

use crate::ident::Ident;

/// One key range: `lower < key <= upper`, either end open.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk<K> {
    /// Position in the plan, from 0.
    pub index: usize,
    /// Exclusive lower bound; `None` means from the start.
    pub lower: Option<K>,
    /// Inclusive upper bound; `None` means to the end.
    pub upper: Option<K>,
}

/// Turns sorted boundaries `b1 < b2 < ... < bn` into `n + 1` ranges: `(-inf, b1]`, `(b1, b2]`, ...,
/// `(bn, +inf)`. Open ends mean a row present on one server only still falls in some chunk.
pub fn plan<K: Clone>(boundaries: &[K]) -> Vec<Chunk<K>> {
    let mut chunks = Vec::with_capacity(boundaries.len() + 1);
    let mut lower: Option<K> = None;
    for (index, b) in boundaries.iter().enumerate() {
        chunks.push(Chunk {
            index,
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b.clone());
    }
    chunks.push(Chunk {
        index: boundaries.len(),
        lower,
        upper: None,
    });
    chunks
}

impl<K: Clone> Chunk<K> {
    /// The WHERE condition for `key` (`1=1` for the single whole-table chunk) and its bound values.
    pub fn condition(&self, key: &Ident) -> (String, Vec<K>) {
        let k = key.quoted();
        match (&self.lower, &self.upper) {
            (None, None) => ("1=1".to_owned(), Vec::new()),
            (Some(l), None) => (format!("{k} > ?"), vec![l.clone()]),
            (None, Some(u)) => (format!("{k} <= ?"), vec![u.clone()]),
            (Some(l), Some(u)) => (format!("{k} > ? AND {k} <= ?"), vec![l.clone(), u.clone()]),
        }
    }
}

/// The per-chunk checksum select: row count and the XOR of each row's CRC32.
///
/// NULL and '' would look alike inside CONCAT_WS, so a bitmap of ISNULL() of the nullable
/// columns is hashed with each row.
pub fn checksum_select(table: &Ident, columns: &[(Ident, bool)], condition: &str) -> String {
    let mut parts: Vec<String> = columns.iter().map(|(c, _)| c.quoted()).collect();
    let nulls: Vec<String> = columns
        .iter()
        .filter(|(_, nullable)| *nullable)
        .map(|(c, _)| format!("ISNULL({})", c.quoted()))
        .collect();
    if !nulls.is_empty() {
        parts.push(format!("CONCAT({})", nulls.join(", ")));
    }
    format!(
        "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', {}))), 0) FROM {} WHERE {}",
        parts.join(", "),
        table.quoted(),
        condition
    )
}

/// The boundary probe: the key `step` rows after `after` (or from the start).
pub fn boundary_select(table: &Ident, key: &Ident, has_lower: bool) -> String {
    let k = key.quoted();
    let cond = if has_lower {
        format!("WHERE {k} > ? ")
    } else {
        String::new()
    };
    format!(
        "SELECT {k} FROM {} {cond}ORDER BY {k} LIMIT 1 OFFSET ?",
        table.quoted()
    )
}

/// Boundaries for an integer key between `lo` and `hi` (the smallest and largest value on either
/// server): every `width` values, so a chunk holds at most `width` rows. Gaps only make chunks
/// smaller; the open ends of [`plan`] catch anything outside.
pub fn numeric_boundaries(lo: i64, hi: i64, width: u64) -> Vec<i64> {
    let width = i64::try_from(width.max(1)).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut b = lo.saturating_sub(1);
    loop {
        b = b.saturating_add(width);
        if b >= hi {
            break;
        }
        out.push(b);
    }
    out
}

/// A chunk's checksum as one server computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ChunkSum {
    /// Rows in the chunk.
    pub rows: u64,
    /// XOR of the rows' CRC32.
    pub crc: u64,
}

/// Indexes of the chunks whose sums differ between the two servers.
pub fn differing(a: &[ChunkSum], b: &[ChunkSum]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n).filter(|&i| a.get(i) != b.get(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ident {
        Ident::new("ruid").unwrap()
    }

    #[test]
    fn no_boundaries_is_one_whole_table_chunk() {
        let c = plan::<i64>(&[]);
        assert_eq!(
            c,
            vec![Chunk {
                index: 0,
                lower: None,
                upper: None
            }]
        );
        assert_eq!(c[0].condition(&key()), ("1=1".to_owned(), vec![]));
    }

    #[test]
    fn boundaries_cover_the_key_space_without_overlap() {
        let c = plan(&[10, 20]);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].condition(&key()), ("`ruid` <= ?".to_owned(), vec![10]));
        assert_eq!(
            c[1].condition(&key()),
            ("`ruid` > ? AND `ruid` <= ?".to_owned(), vec![10, 20])
        );
        assert_eq!(c[2].condition(&key()), ("`ruid` > ?".to_owned(), vec![20]));
        // Every integer key lands in exactly one chunk.
        for k in -5..30 {
            let hits = c
                .iter()
                .filter(|ch| ch.lower.is_none_or(|l| k > l) && ch.upper.is_none_or(|u| k <= u))
                .count();
            assert_eq!(hits, 1, "key {k}");
        }
    }

    #[test]
    fn numeric_boundaries_split_every_width_values() {
        assert_eq!(numeric_boundaries(1, 10, 4), vec![4, 8]);
        assert_eq!(numeric_boundaries(1, 8, 4), vec![4]);
        assert_eq!(numeric_boundaries(5, 5, 4), Vec::<i64>::new());
        assert_eq!(numeric_boundaries(1, 3, 0), vec![1, 2]);
        let p = plan(&numeric_boundaries(1, 10, 4));
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].lower, Some(4));
        assert_eq!(p[1].upper, Some(8));
        // Extremes never overflow.
        assert_eq!(
            numeric_boundaries(i64::MAX - 1, i64::MAX, u64::MAX),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn checksum_sql_hashes_null_bitmap_and_quotes() {
        let cols = vec![
            (Ident::new("id").unwrap(), false),
            (Ident::new("partition").unwrap(), false),
            (Ident::new("path").unwrap(), true),
        ];
        let sql = checksum_select(&Ident::new("location").unwrap(), &cols, "1=1");
        assert_eq!(
            sql,
            "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', `id`, `partition`, `path`, \
             CONCAT(ISNULL(`path`))))), 0) FROM `location` WHERE 1=1"
        );
    }

    #[test]
    fn boundary_sql() {
        let t = Ident::new("location").unwrap();
        assert_eq!(
            boundary_select(&t, &key(), true),
            "SELECT `ruid` FROM `location` WHERE `ruid` > ? ORDER BY `ruid` LIMIT 1 OFFSET ?"
        );
        assert_eq!(
            boundary_select(&t, &key(), false),
            "SELECT `ruid` FROM `location` ORDER BY `ruid` LIMIT 1 OFFSET ?"
        );
    }

    #[test]
    fn differing_chunks_include_missing_ones() {
        let s = |rows, crc| ChunkSum { rows, crc };
        assert_eq!(differing(&[s(1, 5), s(2, 6)], &[s(1, 5), s(2, 7)]), vec![1]);
        assert_eq!(differing(&[s(1, 5)], &[s(1, 5), s(0, 0)]), vec![1]);
        assert!(differing(&[s(3, 3)], &[s(3, 3)]).is_empty());
    }
}
