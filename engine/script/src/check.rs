//! Compile-time checks: path literals and table names in a script are validated before it ever runs,
//! so a typo such as `msg["PID-5-"]` is a compile error instead of a silent empty string.

use std::str::FromStr;

use junction_hl7::{FieldPath, Path};
use rhai::{ASTNode, Expr, FnCallExpr, Position, Stmt, AST};

use crate::tables::Tables;

/// Methods whose first argument is a path (on `msg`) or a field path (on a segment handle).
const PATH_METHODS: &[&str] = &["get", "has", "is_null", "remove", "count", "repeats"];
/// Methods whose first argument is a segment name.
const SEGMENT_METHODS: &[&str] = &["segments", "add_segment"];

/// One problem found in a script: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Where the offending literal is.
    pub position: Position,
    /// What is wrong with it.
    pub message: String,
}

/// Walks the whole AST (functions included) and returns the first bad literal found.
pub(crate) fn check(ast: &AST, tables: &Tables) -> Option<Finding> {
    let mut found = None;
    ast.walk(&mut |nodes: &[ASTNode]| {
        found = match nodes.last() {
            Some(ASTNode::Expr(expr)) => check_expr(expr, tables),
            // A call standing alone as a statement is a statement node, not an expression.
            Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => check_fn_call(call, tables),
            _ => None,
        };
        found.is_none()
    });
    found
}

fn check_expr(expr: &Expr, tables: &Tables) -> Option<Finding> {
    match expr {
        Expr::Index(bin, ..) => literal_path(&bin.lhs, &bin.rhs),
        Expr::Dot(bin, ..) => match &bin.rhs {
            Expr::MethodCall(call, _) => check_call(Some(&bin.lhs), &call.name, &call.args, tables),
            _ => None,
        },
        Expr::FnCall(call, _) => check_fn_call(call, tables),
        _ => None,
    }
}

/// `get(msg, "PID-5")` is the same call as `msg.get("PID-5")`.
fn check_fn_call(call: &FnCallExpr, tables: &Tables) -> Option<Finding> {
    match call.args.split_first() {
        Some((target, rest)) if PATH_METHODS.contains(&call.name.as_str()) => {
            check_call(Some(target), &call.name, rest, tables)
        }
        _ => check_call(None, &call.name, &call.args, tables),
    }
}

fn check_call(
    target: Option<&Expr>,
    name: &str,
    args: &[Expr],
    tables: &Tables,
) -> Option<Finding> {
    if PATH_METHODS.contains(&name) {
        return literal_path(target?, args.first()?);
    }
    if SEGMENT_METHODS.contains(&name) {
        return segment_name(args.first()?);
    }
    match (name, args) {
        ("insert_segment", [_, seg, ..]) => segment_name(seg),
        ("lookup", [Expr::StringConstant(table, pos), ..]) if !tables.contains(table) => {
            Some(Finding {
                position: *pos,
                message: format!("no lookup table named '{table}' in this channel"),
            })
        }
        _ => None,
    }
}

/// Validates `target[literal]`: on `msg` the literal must be a full path; on anything else it is checked
/// only when it looks like a path, so maps keyed by ordinary strings are left alone.
fn literal_path(target: &Expr, index: &Expr) -> Option<Finding> {
    let Expr::StringConstant(text, position) = index else {
        return None;
    };
    let on_msg = matches!(target, Expr::Variable(v, ..) if v.1 == "msg");
    let error = if on_msg || looks_like_path(text) {
        Path::from_str(text).err().map(|e| e.to_string())
    } else if looks_like_field_path(text) {
        FieldPath::from_str(text).err().map(|e| e.to_string())
    } else {
        None
    };
    error.map(|message| Finding {
        position: *position,
        message,
    })
}

fn segment_name(arg: &Expr) -> Option<Finding> {
    let Expr::StringConstant(text, position) = arg else {
        return None;
    };
    let error = match Path::from_str(text) {
        Ok(path) if path.field().is_some() || text.contains('[') => {
            Some(format!("'{text}' is not a segment name (e.g. \"OBX\")"))
        }
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    error.map(|message| Finding {
        position: *position,
        message,
    })
}

/// `PID-5`, `OBX[2].5`: three name characters followed by a path separator.
fn looks_like_path(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 3
        && bytes
            .iter()
            .take(3)
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && matches!(bytes.get(3), Some(b'-' | b'.' | b'['))
}

/// `5`, `3-1`, `3[2].1`: only digits and path punctuation, starting with a digit.
fn looks_like_field_path(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'[' | b']'))
}
