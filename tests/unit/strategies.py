"""Hypothesis strategies shared by the unit properties: hostile text and quantities up to the contract's limits.

The pure functions (splitting, attribution, rating, bill pricing and allocation) must not care what an id, a
source, a subject, an information system or a department name looks like, nor how large a quantity is within the
contract (21 whole digits, 9 places: 30 digits, more than Decimal's default 28-digit context)."""

from decimal import Decimal

from hypothesis import strategies as st

FORMULA_LIKE = ["=1+1", "+1", "-2+3", "@SUM(A1:A9)", '=HYPERLINK("http://x","y")', "\t=cmd|' /C calc'!A0",
                "=1+1\n", "'; DROP TABLE events; --"]
ODD = ["市财政局", "\u202eevil\u202c", "a\x00b", "\r\n", "\ufeffbom", " ", "ﷺ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "e\u0301", "\U0001F600",
       "\x7f", "\u2028", "NULL", "None", "", "0", "a,b", '"quoted"']

# Any Unicode (control and format characters, combining marks, astral planes), formula-like strings, odd ones,
# and long ones (up to 5,000 characters).
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=24),
    st.text(st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "So", "Lo", "Nd")), min_size=1,
            max_size=16),
    st.sampled_from(FORMULA_LIKE + ODD),
    # JSON text cannot carry a lone surrogate (orjson refuses it on the way in): every other character may come
    st.builds(lambda c, n: c * n, st.characters(exclude_categories=("Cs",)), st.integers(256, 5000)),
)


def distinct_texts(size: int):
    """``size`` different hostile strings (ids, department names, systems)."""
    return st.lists(hostile_text, min_size=size, max_size=size, unique=True)


LARGEST_QUANTITY = Decimal("999999999999999999999.999999999")  # 21 whole digits, 9 places
quantities = st.one_of(
    st.decimals(min_value=0, max_value=LARGEST_QUANTITY, places=9, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=1000, places=9, allow_nan=False, allow_infinity=False),
    st.sampled_from([LARGEST_QUANTITY, Decimal("0.000000001"), Decimal(0), Decimal("1E+20")]),
)
