//! The coaching: this month's spending by category against the budgets, a few plain tips,
//! and the chart as server-rendered SVG. Pure functions over the user's data.

use crate::data::{Budget, Transaction};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CategorySpend {
    pub category: String,
    pub spent_cents: i64,
    pub budget_cents: i64,
    /// Spent as a percentage of the budget (0 when there is no budget).
    pub percent: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub income_cents: i64,
    pub spent_cents: i64,
    pub categories: Vec<CategorySpend>,
    pub tips: Vec<String>,
}

/// Sums the month's transactions by category against the budgets.
#[must_use]
pub fn summarize(transactions: &[Transaction], budgets: &[Budget]) -> Summary {
    let mut spent: BTreeMap<String, i64> = BTreeMap::new();
    let mut income = 0;
    for t in transactions {
        if t.amount_cents >= 0 {
            income += t.amount_cents;
        } else {
            *spent.entry(t.category.clone()).or_default() -= t.amount_cents;
        }
    }
    for b in budgets {
        spent.entry(b.category.clone()).or_default();
    }
    let categories: Vec<CategorySpend> = spent
        .iter()
        .map(|(category, spent)| {
            let budget = budgets
                .iter()
                .find(|b| &b.category == category)
                .map_or(0, |b| b.limit_cents);
            CategorySpend {
                category: category.clone(),
                spent_cents: *spent,
                budget_cents: budget,
                percent: if budget > 0 { spent * 100 / budget } else { 0 },
            }
        })
        .collect();
    let spent_total: i64 = spent.values().sum();
    let tips = tips(&categories, income, spent_total);
    Summary {
        income_cents: income,
        spent_cents: spent_total,
        categories,
        tips,
    }
}

fn tips(categories: &[CategorySpend], income: i64, spent: i64) -> Vec<String> {
    let mut tips = Vec::new();
    for c in categories.iter().filter(|c| c.budget_cents > 0) {
        if c.percent > 100 {
            tips.push(format!(
                "{} is {} over budget ({}% of {}). Try a cheaper week to catch up.",
                c.category,
                money(c.spent_cents - c.budget_cents),
                c.percent,
                money(c.budget_cents)
            ));
        } else if c.spent_cents == c.budget_cents {
            tips.push(format!(
                "{} has used its whole budget for the month.",
                c.category
            ));
        } else if c.percent >= 80 {
            tips.push(format!(
                "{} has {} left this month: slow down a little.",
                c.category,
                money(c.budget_cents - c.spent_cents)
            ));
        }
    }
    if income > 0 {
        let saved = (income - spent) * 100 / income;
        if saved >= 20 {
            tips.push(format!(
                "You are on course to save {saved}% of your income this month. Well done!"
            ));
        } else {
            tips.push(format!(
                "You are saving {saved}% of your income; 20% is a good target."
            ));
        }
    }
    tips
}

/// Cents as `$1,234.56` (negative amounts with a leading minus).
#[must_use]
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of spending against budget, one row per budgeted category.
#[must_use]
pub fn spending_chart(categories: &[CategorySpend]) -> String {
    let rows: Vec<&CategorySpend> = categories.iter().filter(|c| c.budget_cents > 0).collect();
    let row_height = 34;
    let height = 16 + row_height * rows.len();
    let (label_w, bar_w) = (120.0, 300.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 520 {height}\" role=\"img\" \
         aria-label=\"Spending against budget by category\" class=\"chart\">"
    );
    for (i, c) in rows.iter().enumerate() {
        let y = 8 + i * row_height;
        let ratio = (c.spent_cents as f64 / c.budget_cents as f64).min(1.5);
        let spent_w = bar_w * ratio / 1.5;
        let budget_w = bar_w / 1.5;
        let class = if c.percent > 100 {
            "over"
        } else if c.percent >= 80 {
            "near"
        } else {
            "ok"
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" class=\"label\">{name}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{budget_w:.1}\" height=\"20\" rx=\"4\" class=\"budget\"/>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{spent_w:.1}\" height=\"20\" rx=\"4\" class=\"spent {class}\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\" class=\"value\">{pct}%</text>",
            ty = y + 15,
            name = escape(&c.category),
            vx = label_w + bar_w + 8.0,
            pct = c.percent,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(category: &str, cents: i64) -> Transaction {
        Transaction {
            id: 0,
            account: "a".into(),
            day: "2026-11-01".into(),
            description: "d".into(),
            category: category.into(),
            amount_cents: cents,
        }
    }

    #[test]
    fn spending_is_summed_against_budgets_with_tips() {
        let s = summarize(
            &[
                tx("Income", 100_000),
                tx("Dining", -12_000),
                tx("Dining", -6_000),
                tx("Groceries", -1_000),
            ],
            &[
                Budget {
                    category: "Dining".into(),
                    limit_cents: 15_000,
                },
                Budget {
                    category: "Groceries".into(),
                    limit_cents: 40_000,
                },
                Budget {
                    category: "Transport".into(),
                    limit_cents: 5_000,
                },
            ],
        );
        assert_eq!((s.income_cents, s.spent_cents), (100_000, 19_000));
        let dining = s
            .categories
            .iter()
            .find(|c| c.category == "Dining")
            .unwrap();
        assert_eq!((dining.spent_cents, dining.percent), (18_000, 120));
        assert!(
            s.tips[0].starts_with("Dining is $30.00 over budget"),
            "{:?}",
            s.tips
        );
        assert!(s.tips.last().unwrap().contains("save 81%"));
        assert!(
            s.categories
                .iter()
                .any(|c| c.category == "Transport" && c.spent_cents == 0)
        );
    }

    #[test]
    fn money_and_chart_render() {
        assert_eq!(money(12_345_678), "$123,456.78");
        assert_eq!(money(-5), "-$0.05");
        let chart = spending_chart(&[CategorySpend {
            category: "Food & <drink>".into(),
            spent_cents: 200,
            budget_cents: 100,
            percent: 200,
        }]);
        assert!(chart.starts_with("<svg") && chart.contains("Food &amp; &lt;drink&gt;"));
        assert!(chart.contains("spent over") && chart.contains("200%"));
    }
}
