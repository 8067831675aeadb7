//! Maps dotted key paths (`routes.0.upstream`) to line and column in the YAML source.
//! serde loses positions, so a marked event parse builds this index once per load.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

pub struct Index {
    positions: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

impl Builder {
    /// Path of the node that starts now; `None` when the event is a mapping key.
    fn node_path(&mut self, scalar_key: Option<&str>, mark: Marker) -> Option<String> {
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = join(path, &next.to_string());
                *next += 1;
                self.positions.entry(p.clone()).or_insert(pos);
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar_key.unwrap_or("?").to_string();
                    self.positions.entry(join(path, &k)).or_insert(pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                self.node_path(Some(&s), mark);
            }
            Event::MappingStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.node_path(None, mark);
            }
            _ => {}
        }
    }
}

impl Index {
    /// Parse `text`; a syntax error comes back as (line, column, message).
    pub fn build(text: &str) -> Result<Index, (usize, usize, String)> {
        let mut b = Builder {
            stack: Vec::new(),
            positions: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut b, false).map_err(|e| {
            let m = e.marker();
            (m.line(), m.col() + 1, e.info().to_string())
        })?;
        Ok(Index {
            positions: b.positions,
        })
    }

    /// The closest known position: the path itself or its nearest ancestor.
    pub fn position(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }
}
