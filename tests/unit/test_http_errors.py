"""The one 4xx helper and the month parameter: a bad month is a 422 naming its parameter, after the token."""

from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from services.common.http import MonthQuery, month_param, unprocessable
from services.common.periods import Month


def signed_in(authorization: Annotated[str | None, Header()] = None) -> str:
    if authorization is None:
        raise HTTPException(401, detail="Authorization: missing")
    return authorization


app = FastAPI()
Caller = Annotated[str, Depends(signed_in)]


@app.get("/report")
def report(caller: Caller, month: MonthQuery):
    return {"month": str(month)}


@app.get("/since")
def since(caller: Caller, through: Annotated[Month | None, Depends(month_param("through", required=False))]):
    return {"through": None if through is None else str(through)}


@app.post("/periods/{month}/close")
def close(caller: Caller, month: Annotated[Month, Depends(month_param(in_path=True))]):
    return {"month": str(month)}


client = TestClient(app)
TOKEN = {"Authorization": "x"}


def test_a_422_names_the_field_it_is_about():
    assert unprocessable("lang", "choose from zh, en").detail == "lang: choose from zh, en"
    assert unprocessable("department_id: unknown department 'x'").detail == "department_id: unknown department 'x'"
    assert unprocessable("x", "y").status_code == 422


def test_a_month_parameter_gives_its_month():
    assert client.get("/report?month=2026-11", headers=TOKEN).json() == {"month": "2026-11"}
    assert client.post("/periods/2026-11/close", headers=TOKEN).json() == {"month": "2026-11"}
    assert client.get("/since", headers=TOKEN).json() == {"through": None}


def test_a_bad_month_is_a_422_naming_the_parameter():
    answer = client.get("/since?through=２０２６-10", headers=TOKEN)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "through: '２０２６-10' is not a month in the form YYYY-MM"}
    answer = client.post("/periods/2026-13/close", headers=TOKEN)
    assert answer.json() == {"detail": "month: '2026-13' is not a month in the form YYYY-MM"}


def test_a_request_without_a_token_is_refused_before_its_month_is_read():
    assert client.get("/report?month=bad").status_code == 401
