//! `event create NAME ... --categories FILE`: the price categories of a big venue, in TOML,
//! for when a line of `--category` flags would not do.
//!
//! ```toml
//! currency = "EUR"          # optional; --currency wins, EUR if neither
//!
//! [[category]]
//! name = "front"
//! price = "80.00"           # major units as text (or a whole number), at most two decimals
//! covers = ["A-B", "C1-C10"]
//! max_per_user = 4          # optional; 0 or absent: only the event's limit
//! ```
//!
//! A mistake is reported as `FILE:LINE:COLUMN: key `...`: what is wrong`, like cluster.toml's.
//! Whether the covers fit the seat map is the cluster's to decide, when the event is made.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::command::{price_minor, CategoryArg};
use crate::config::{ConfigError, Locator};

/// The largest file read: far more than any venue's categories take.
const FILE_BYTES_MAX: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    currency: Option<String>,
    #[serde(default)]
    category: Vec<RawCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    name: Spanned<String>,
    price: Spanned<toml::Value>,
    covers: Spanned<Vec<String>>,
    #[serde(default)]
    max_per_user: u32,
}

/// The categories of `path`, best first, and the currency it names.
pub fn load(path: &Path) -> Result<(Vec<CategoryArg>, Option<String>), ConfigError> {
    let unreadable = |source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > FILE_BYTES_MAX {
        return Err(unreadable(std::io::Error::other(format!(
            "{size} bytes; a categories file has at most {FILE_BYTES_MAX}"
        ))));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    parse(path, &text)
}

/// Parses `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<(Vec<CategoryArg>, Option<String>), ConfigError> {
    let locate = Locator { path, text };
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| locate.error(e.span().unwrap_or(0..0), None, e.message()))?;
    if raw.category.is_empty() {
        return Err(locate.error(
            0..0,
            Some("category"),
            "no categories: add a [[category]] table with name, price and covers",
        ));
    }
    let mut categories = Vec::with_capacity(raw.category.len());
    for (i, c) in raw.category.into_iter().enumerate() {
        let key = |field: &str| format!("category[{i}].{field}");
        if c.name.get_ref().trim().is_empty() {
            return Err(locate.error(c.name.span(), Some(&key("name")), "must not be empty"));
        }
        let price = match c.price.get_ref() {
            toml::Value::String(text) => price_minor(text),
            toml::Value::Integer(whole) => u64::try_from(*whole)
                .ok()
                .and_then(|w| w.checked_mul(100)),
            _ => None,
        }
        .ok_or_else(|| {
            locate.error(
                c.price.span(),
                Some(&key("price")),
                "write the price as text with at most two decimals, like \"45.50\", or a whole number",
            )
        })?;
        if c.covers.get_ref().is_empty() {
            return Err(locate.error(
                c.covers.span(),
                Some(&key("covers")),
                "name the rows or seats it covers, like [\"A-B\", \"C1-C10\"]",
            ));
        }
        categories.push(CategoryArg {
            name: c.name.into_inner(),
            price_minor: price,
            covers: c
                .covers
                .into_inner()
                .iter()
                .map(|cover| cover.trim().to_ascii_uppercase())
                .collect(),
            max_per_user: c.max_per_user,
        });
    }
    Ok((categories, raw.currency.map(|c| c.to_ascii_uppercase())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<(Vec<CategoryArg>, Option<String>), String> {
        parse(Path::new("venue.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_venue_file_gives_its_categories_in_order() {
        let (categories, currency) = parsed(
            "currency = \"chf\"\n\n[[category]]\nname = \"front\"\nprice = \"80.5\"\ncovers = [\"a-b\"]\nmax_per_user = 2\n\n[[category]]\nname = \"rear\"\nprice = 45\ncovers = [\"C\", \"D1-D10\"]\n",
        )
        .expect("parses");
        assert_eq!(currency.as_deref(), Some("CHF"));
        assert_eq!(
            categories,
            [
                CategoryArg {
                    name: "front".into(),
                    price_minor: 8_050,
                    covers: vec!["A-B".into()],
                    max_per_user: 2,
                },
                CategoryArg {
                    name: "rear".into(),
                    price_minor: 4_500,
                    covers: vec!["C".into(), "D1-D10".into()],
                    max_per_user: 0,
                },
            ]
        );
    }

    #[test]
    fn a_mistake_names_the_file_line_and_key() {
        let cases = [
            (
                "[[category]]\nname = \"front\"\nprice = 80.5\ncovers = [\"A\"]\n",
                "venue.toml:3:9: key `category[0].price`",
            ),
            (
                "[[category]]\nname = \"front\"\nprice = \"80\"\ncovers = []\n",
                "venue.toml:4:10: key `category[0].covers`",
            ),
            (
                "[[category]]\nname = \"\"\nprice = \"1\"\ncovers = [\"A\"]\n",
                "venue.toml:2:8: key `category[0].name`",
            ),
            (
                "[[category]]\nname = \"a\"\nprice = \"1\"\ncover = [\"A\"]\n",
                "venue.toml:4:1",
            ),
            ("currency = \"EUR\"\n", "key `category`: no categories"),
        ];
        for (text, expected) in cases {
            let error = parsed(text).expect_err(text);
            assert!(
                error.starts_with(expected) || error.contains(expected),
                "{error}"
            );
        }
    }
}
