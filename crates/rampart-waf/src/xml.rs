//! The XML request body processor, as far as CRS needs it: `XML:/*` is the root element's
//! text content (every text and CDATA node, in document order, concatenated, as libxml2's
//! `xmlNodeGetContent` gives ModSecurity), `XML://@*` every attribute value. Element and
//! attribute names are not values. roxmltree never fetches external entities and bounds
//! entity expansion and nesting, so hostile documents stay bounded.

pub struct XmlValues {
    pub text: Vec<u8>,
    pub attributes: Vec<Vec<u8>>,
}

pub fn parse(body: &[u8]) -> Result<XmlValues, crate::Error> {
    let text = std::str::from_utf8(body).map_err(crate::Error::XmlUtf8)?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(crate::Error::Xml)?;
    let mut out = XmlValues {
        text: Vec::new(),
        attributes: Vec::new(),
    };
    for node in doc.root_element().descendants() {
        if node.is_text() {
            out.text
                .extend_from_slice(node.text().unwrap_or("").as_bytes());
        } else if node.is_element() {
            for a in node.attributes() {
                out.attributes.push(a.value().as_bytes().to_vec());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_without_names() {
        let x = parse(
            br#"<?xml version="1.0"?><a k="v1"><b x="v2">one</b><![CDATA[two]]><c/>three</a>"#,
        )
        .unwrap();
        assert_eq!(x.text, b"onetwothree");
        assert_eq!(x.attributes, vec![b"v1".to_vec(), b"v2".to_vec()]);
        assert!(parse(b"<a><b></a>").is_err());
    }
}
