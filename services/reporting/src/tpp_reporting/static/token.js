"use strict";
// The pages are public shells; their data comes from the report API, which wants a bearer
// token (viewer or operator). Open a page with #token=<JWT>: the fragment never reaches a
// server or a log; the token is kept for this tab only (sessionStorage) and removed from the
// address bar, so the links between the pages (dashboard, annual review) keep it.
const TOKEN = (() => {
  const found = new URLSearchParams(location.hash.slice(1)).get("token");
  if (found) {
    sessionStorage.setItem("tpp-token", found);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("tpp-token");
})();

// A report from the API with the tab's token: the response, or an Error saying what to do.
async function fetchReport(path, accept) {
  const headers = {"Accept": accept || "application/json"};
  if (TOKEN) headers["Authorization"] = "Bearer " + TOKEN;
  const response = await fetch(path, {headers});
  if (response.status === 401) {
    throw new Error("sign in: open " + location.pathname +
                    "#token=<viewer token> (tpp-ops token --role viewer)");
  }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response;
}
