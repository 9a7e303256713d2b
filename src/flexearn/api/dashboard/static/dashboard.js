// The flexearn dashboard: polls /dashboard/api/… and redraws the markets, charts, catalog and user.
"use strict";

(() => {
  const API = "/dashboard/api";
  const POLL_MS = Number(new URLSearchParams(location.search).get("poll") || 2000);
  const COLORS = { rate: "#2f6fed", lending: "#1f9d63", demand: "#d64545", lent: "#2f6fed", pending: "#f0a830", supply: "#6a4bd8" };
  const { render, spark, formatPct: pct, formatAmount: amt, formatTime } = FlexCharts;
  const $ = (id) => document.getElementById(id);
  const hash = new URLSearchParams(location.hash.slice(1));
  const state = {
    ccy: hash.get("ccy"), window: hash.get("window") || "7d", user: hash.get("user") || "",
    token: sessionStorage.getItem("flexearn-admin-token") || "", data: {},
  };
  window.flexearnDashboard = state; // for the curious, and for the browser test

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const num = Number;
  const iso = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";

  async function get(path) {
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    const response = await fetch(API + path, { headers, cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw Object.assign(new Error(body.message || response.statusText), { status: response.status });
    return body;
  }

  function saveHash() {
    const h = new URLSearchParams({ ccy: state.ccy || "", window: state.window });
    if (state.user) h.set("user", state.user);
    history.replaceState(null, "", `#${h}`);
  }

  // --- markets ------------------------------------------------------------------------------

  function drawCards(overview) {
    const c = overview.clock;
    $("clock").textContent = `${iso(c.now)} · ${c.mode === "simulated" ? `simulated ×${c.speed}` : "real time"}`;
    if (!state.ccy && overview.markets.length) state.ccy = (overview.markets.find((m) => m.ccy === "USDT") || overview.markets[0]).ccy;
    const box = $("markets");
    box.replaceChildren(...overview.markets.map((m) => {
      const card = document.createElement("div");
      const lent = num(m.lent), pending = num(m.pending);
      card.className = `card${m.ccy === state.ccy ? " selected" : ""}`;
      card.dataset.ccy = m.ccy;
      card.innerHTML = `
        <div class="top"><span class="ccy">${esc(m.ccy)}</span><span class="badge">${m.mode === "pro_rata" ? "pro rata" : "auction"}</span></div>
        <div class="top"><span class="rate">${pct(num(m.preRate))}</span><span class="sub">borrow · lend ${m.lendingRate === null ? "–" : pct(num(m.lendingRate))}</span></div>
        <div class="spark-box"></div>
        <div class="bar" title="lent vs pending"><div style="width:${lent + pending > 0 ? (100 * lent) / (lent + pending) : 0}%"></div></div>
        <div class="sub">lent ${amt(lent)} · pending ${amt(pending)} · next ${pct(num(m.estRate))}</div>`;
      spark(card.querySelector(".spark-box"), m.spark.map(([t, r]) => [t, num(r)]), COLORS.rate);
      card.addEventListener("click", () => { state.ccy = m.ccy; saveHash(); refresh(); });
      return card;
    }));
  }

  function staircase(steps) {
    // (0, r1) → (C1, r1) → (C1, r2) → (C2, r2) …: every offer at its minimum rate, cheapest first
    const points = [];
    steps.forEach((s, i) => {
      const rate = num(s.rate);
      points.push([i ? num(steps[i - 1].cumulative) : 0, rate], [num(s.cumulative), rate]);
    });
    return points;
  }

  function drawMarket(m) {
    const match = m.match;
    $("market-title").textContent = `${m.ccy} · ${m.mode === "pro_rata" ? "pro-rata" : "auction"} market`;
    const stat = (label, value) => `<span>${label} <b>${value}</b></span>`;
    $("market-stats").innerHTML = [
      stat("hour", match ? formatTime(match.ts, true) : "–"),
      stat("borrow rate", match ? pct(num(match.rate)) : "–"),
      stat("lending rate", match ? pct(num(match.lendingRate)) : "–"),
      stat("next (est.)", pct(num(m.estRate))),
      stat("demand", match ? amt(num(match.demand)) : "–"),
      stat("lent", amt(num(m.lent))),
      stat("pending", amt(num(m.pending))),
    ].join("");
    const supplyBox = $("chart-supply");
    render(supplyBox, {
      id: "supply", height: 280, x: { kind: "amount", label: "cumulative" }, y: { format: "pct" },
      series: [{ id: "supply", label: "minimum rate", legend: `offers (${m.supply.length} rate levels)`, color: COLORS.supply, points: staircase(m.supply), fill: true }],
      vlines: match ? [{ id: "demand", label: `demand ${amt(num(match.demand))}`, legend: "borrow demand", x: num(match.demand), color: COLORS.demand }] : [],
      hlines: match ? [{ id: "clearing", label: `clearing ${pct(num(match.rate))}`, legend: "clearing (borrow) rate", y: num(match.rate), color: COLORS.rate }] : [],
    });
    supplyBox.querySelector("svg").dataset.hour = match ? match.ts : "";
    const hours = m.hours;
    // the window's hours that exist (a young market has fewer than 30 days)
    const x = hours.length ? { kind: "time", min: hours[0].ts, max: hours[hours.length - 1].ts } : { kind: "time" };
    render($("chart-rates"), {
      id: "rates", x, y: { format: "pct" },
      series: [
        { id: "rate", label: "borrow rate", color: COLORS.rate, points: hours.map((h) => [h.ts, num(h.rate)]) },
        { id: "lendingRate", label: "lending rate", color: COLORS.lending, points: hours.map((h) => [h.ts, num(h.lendingRate)]) },
      ],
    });
    render($("chart-amounts"), {
      id: "amounts", height: 240, x, y: { format: "amount" },
      series: [
        { id: "lent", label: "lent", color: COLORS.lent, fill: true, stack: "a", points: hours.map((h) => [h.ts, num(h.lent)]) },
        { id: "pending", label: "pending", legend: "pending (offered, not lent)", color: COLORS.pending, fill: true, stack: "a", width: 1.5, points: hours.map((h) => [h.ts, num(h.pending)]) },
        { id: "demand", label: "demand", color: COLORS.demand, dash: true, width: 1.5, points: hours.map((h) => [h.ts, num(h.demand)]) },
      ],
    });
    for (const b of $("windows").querySelectorAll("button")) b.classList.toggle("active", b.dataset.window === m.window);
  }

  // --- catalog ------------------------------------------------------------------------------

  function drawProducts(products) {
    $("products").tBodies[0].innerHTML = products.map((p) => {
      const tiers = p.tiers.map((t) => `${amt(num(t.min))}–${amt(num(t.max))}: <b>${esc(t.apy)}%</b>`).join("<br>");
      const used = p.quota === null ? null : num(p.quotaUsed) / num(p.quota);
      const quota = p.quota === null ? "no quota" :
        `<div class="bar"><div style="width:${(100 * used).toFixed(1)}%"></div></div>${amt(num(p.quotaUsed))} / ${amt(num(p.quota))} (${(100 * used).toFixed(1)}%)`;
      const term = p.periodType === "fixed" ? `fixed ${p.periodDays} d` : `flexible${p.redeemDelayDays ? `, D+${p.redeemDelayDays}` : ""}`;
      return `<tr data-product="${p.id}"><td>${p.id}</td><td>${esc(p.coin)}</td><td>${term}</td><td>${esc(p.level)}</td>
        <td>${tiers}</td><td>${amt(num(p.singleMin))}–${amt(num(p.singleMax))}</td><td class="quota">${quota}</td>
        <td><span class="badge ${esc(p.status)}">${esc(p.status.replace("_", " "))}</span></td></tr>`;
    }).join("");
  }

  // --- a user -------------------------------------------------------------------------------

  function table(title, columns, rows) {
    if (!rows.length) return `<h3>${title}</h3><p class="sub">none</p>`;
    const head = columns.map(([label, , cls]) => `<th class="${cls || ""}">${label}</th>`).join("");
    const body = rows.map((r) => `<tr>${columns.map(([, f, cls]) => `<td class="${cls || ""}">${f(r)}</td>`).join("")}</tr>`).join("");
    return `<h3>${title}</h3><div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
  }

  function drawUser(u) {
    const n = "num";
    $("user").innerHTML = `<p><b>${esc(u.user.name)}</b> · id ${u.user.id} · level ${esc(u.user.level)}</p><div class="user-grid"><div>${
      table("Funding balances", [["ccy", (r) => esc(r.ccy)], ["available", (r) => esc(r.available), n], ["frozen", (r) => esc(r.frozen), n]], u.funding)
    }${table("Trading balances", [["ccy", (r) => esc(r.ccy)], ["balance", (r) => esc(r.balance), n]], u.trading || [])
    }${table("Savings positions", [["ccy", (r) => esc(r.ccy)], ["amount", (r) => esc(r.amt), n], ["lent", (r) => esc(r.lent), n],
      ["pending", (r) => esc(r.pending), n], ["earnings", (r) => esc(r.earnings), n], ["min rate", (r) => pct(num(r.rate)), n]], u.positions)
    }${table("Catalog holdings", [["product", (r) => r.productId], ["coin", (r) => esc(r.coin)], ["term", (r) => esc(r.periodType)],
      ["amount", (r) => esc(r.amount), n], ["last profit", (r) => esc(r.lastProfit), n], ["total profit", (r) => esc(r.totalProfit), n]], u.holdings)
    }</div><div>${table("Lending history (latest hours)", [["hour", (r) => formatTime(r.ts, true)], ["ccy", (r) => esc(r.ccy)],
      ["lent", (r) => esc(r.amt), n], ["earned", (r) => esc(r.earnings), n], ["rate", (r) => pct(num(r.rate)), n]], u.lending)
    }${table("Catalog orders", [["order", (r) => r.id], ["product", (r) => r.productId], ["type", (r) => esc(r.type)],
      ["amount", (r) => `${esc(r.amount)} ${esc(r.coin)}`, n], ["status", (r) => esc(r.status)], ["time", (r) => iso(r.ts)]], u.orders)
    }</div></div>`;
  }

  async function loadUser() {
    if (!state.user) return;
    try {
      drawUser(state.data.user = await get(`/users/${encodeURIComponent(state.user)}`));
    } catch (error) {
      if (error.status === 401) $("user-token").hidden = false;
      $("user").innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  }

  // --- polling ------------------------------------------------------------------------------

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const overview = state.data.overview = await get("/overview");
      drawCards(overview);
      if (state.ccy) drawMarket(state.data.market = await get(`/markets/${state.ccy}?window=${state.window}`));
      drawProducts(state.data.products = await get("/products"));
      await loadUser();
      $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
      state.updates = (state.updates || 0) + 1;
    } catch (error) {
      $("status").textContent = `offline: ${error.message}`;
    }
    if (POLL_MS > 0) timer = setTimeout(refresh, POLL_MS);
  }

  $("windows").addEventListener("click", (event) => {
    const w = event.target.dataset && event.target.dataset.window;
    if (w) { state.window = w; saveHash(); refresh(); }
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.user = $("user-ref").value.trim();
    state.token = $("user-token").value || state.token;
    if (state.token) sessionStorage.setItem("flexearn-admin-token", state.token);
    saveHash();
    refresh();
  });
  $("user-ref").value = state.user;
  let resized = null;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => state.data.market && drawMarket(state.data.market), 150); });
  refresh();
})();
