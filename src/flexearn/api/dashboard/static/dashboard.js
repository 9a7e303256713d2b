// The flexearn dashboard: polls /dashboard/api/… and redraws the markets, charts, catalog and user.
"use strict";

(() => {
  const API = "/dashboard/api";
  const POLL_MS = Number(new URLSearchParams(location.search).get("poll") || 2000);
  const COLORS = {
    rate: "#2f6fed", lending: "#1f9d63", demand: "#d64545", lent: "#2f6fed", pending: "#f0a830",
    supply: "#6a4bd8", earned: "#1f9d63", tier: "#6a4bd8",
  };
  const { render, spark, staircase, formatPct: pct, formatAmount: amt, formatTime } = FlexCharts;
  const $ = (id) => document.getElementById(id);
  const hash = new URLSearchParams(location.hash.slice(1));
  const state = {
    ccy: hash.get("ccy"), window: hash.get("window") || "7d", user: hash.get("user") || "", earning: hash.get("earning"),
    earn: hash.get("earn"),
    token: sessionStorage.getItem("flexearn-admin-token") || "", data: {},
  };
  window.flexearnDashboard = state; // for the curious, and for the browser test

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const num = Number;
  const iso = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  const HOURS_PER_YEAR = 365 * 24;

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
    if (state.user && state.earning) h.set("earning", state.earning);
    if (state.earn) h.set("earn", state.earn);
    history.replaceState(null, "", `#${h}`);
  }

  // --- markets ------------------------------------------------------------------------------

  function drawCards(overview) {
    const c = overview.clock;
    $("clock").textContent = `${iso(c.now)} · ${c.mode === "simulated" ? `simulated ×${c.speed}` : "real time"}`;
    if (!overview.markets.some((m) => m.ccy === state.ccy)) {
      state.ccy = overview.markets.length ? (overview.markets.find((m) => m.ccy === "USDT") || overview.markets[0]).ccy : null;
    }
    const box = $("markets");
    if (!overview.markets.length) {
      box.innerHTML = `<p class="empty wide">No markets yet. Add a currency and open its market: <code>flexearn currency add USDT</code>
        then <code>flexearn market set USDT --mode auction</code>, or the admin API (<code>POST /admin/v1/currencies</code>,
        <code>PUT /admin/v1/markets/USDT</code>).</p>`;
      return;
    }
    box.replaceChildren(...overview.markets.map((m) => {
      const card = document.createElement("div");
      const lent = num(m.lent), pending = num(m.pending);
      const settled = m.lendingRate !== null; // an hour of this market has been settled
      card.className = `card${m.ccy === state.ccy ? " selected" : ""}`;
      card.dataset.ccy = m.ccy;
      const lend = m.mode === "pro_rata" ? "what an eligible offer earns on its whole amount: its share lent × the borrow rate, less the insurance fee"
        : "what a lent offer earns: the clearing rate, less the insurance fee";
      card.innerHTML = `
        <div class="top"><span class="ccy">${esc(m.ccy)}</span><span class="badge">${m.mode === "pro_rata" ? "pro rata" : "auction"}</span></div>
        <div class="top"><span class="rate" title="borrow rate of the last settled hour">${settled ? pct(num(m.preRate)) : "–"}</span>
          <span class="sub" title="${lend}">${settled ? `borrow · lend ${pct(num(m.lendingRate))}` : "no hour settled yet"}</span></div>
        <div class="spark-box"></div>
        <div class="bar" title="lent vs pending"><div style="width:${lent + pending > 0 ? (100 * lent) / (lent + pending) : 0}%"></div></div>
        <div class="sub">lent ${amt(lent)} · pending ${amt(pending)} · next ${pct(num(m.estRate))}</div>`;
      spark(card.querySelector(".spark-box"), m.spark.map(([t, r]) => [t, num(r)]), COLORS.rate);
      card.addEventListener("click", () => { state.ccy = m.ccy; saveHash(); refresh(); });
      return card;
    }));
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  }

  // Who settles, how far settlement has come, and the ledger's last green check (real times, told
  // against this browser's clock: the overview carries no wall time, so it reads the same until something changes).
  function drawEngine(e, clock) {
    const parts = [e.settler
      ? `<span>settler <b>${esc(e.settler.split(":").slice(0, 2).join(" pid "))}</b></span>`
      : `<span class="warn">no settler holds the lease: nothing settles the hours (flexearn serve settles, or flexearn worker)</span>`];
    if (e.lastSettledHour !== null) {
      const behind = Math.floor((clock.now - e.lastSettledHour) / 3600e3);
      parts.push(`<span>every market settled up to <b>${formatTime(e.lastSettledHour, true)} UTC</b>${
        behind > 0 ? ` <span class="warn">${behind} h behind the clock</span>` : ""}</span>`);
    }
    parts.push(e.ledgerCheckedAt === null ? "<span>ledger not checked yet</span>"
      : `<span>ledger checked green <b>${ago(Date.now() - e.ledgerCheckedAt)}</b> ago</span>`);
    if (e.settlingSince !== null) {
      parts.push(`<span class="warn">a period has been settling in ranges for ${ago(Date.now() - e.settlingSince)} (its trading waits)</span>`);
    }
    $("engine").innerHTML = parts.join("");
  }

  function explain(m) {
    const match = m.match;
    const borrow = match ? ` (${pct(num(match.rate))})` : "", lending = match ? `, ${pct(num(match.lendingRate))}` : "";
    if (m.mode === "pro_rata") {
      const share = match && num(match.rate) > 0 ? ` (${(100 * num(match.lendingRate) / num(match.rate)).toFixed(1)} % of the borrow rate this hour)` : "";
      return `<b>Why “lend” differs from the borrow rate:</b> in a pro-rata market borrowers pay the borrow rate${borrow}.
        Every offer whose own minimum rate is at or below it lends the same share of itself (demand ÷ eligible offers, at most all of it)
        and earns the borrow rate, less the insurance fee, on that share. On its whole amount that is the lending rate${lending}${share}.
        A user's own rate is only the least it accepts: it decides whether the offer takes part, never what it earns.`;
    }
    return `<b>How the rates are set:</b> in an auction market offers are lent cheapest first until the hour's demand is met;
      the last offer lent sets the borrow rate${borrow} and every lent offer earns it, less the insurance fee: the lending rate${lending}.
      A user's own rate is the least it accepts: an offer above the clearing rate stays pending, unlent.`;
  }

  function drawMarket(m) {
    const match = m.match;
    $("market").hidden = false;
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
    $("market-explain").innerHTML = explain(m);
    const supplyBox = $("chart-supply");
    const levels = m.supply.map((s, i) => [i ? num(m.supply[i - 1].cumulative) : 0, num(s.cumulative), num(s.rate)]);
    render(supplyBox, {
      id: "supply", height: 280, x: { kind: "amount", label: "cumulative" }, y: { format: "pct" },
      empty: `No offers yet: savings bought in ${m.ccy} appear here, by the minimum rate each accepts.`,
      series: [{ id: "supply", label: "minimum rate", legend: `offers (${m.supply.length} rate levels)`, color: COLORS.supply, points: staircase(levels), fill: true }],
      vlines: match && m.supply.length ? [{ id: "demand", label: `demand ${amt(num(match.demand))}`, legend: "borrow demand", x: num(match.demand), color: COLORS.demand }] : [],
      hlines: match && m.supply.length ? [{ id: "clearing", label: `clearing ${pct(num(match.rate))}`, legend: "clearing (borrow) rate", y: num(match.rate), color: COLORS.rate }] : [],
    });
    const supplySvg = supplyBox.querySelector("svg");
    if (supplySvg) supplySvg.dataset.hour = match ? match.ts : "";
    const hours = m.hours;
    const none = "No settled hours yet: the settler (flexearn serve, or flexearn worker) settles each hour as it ends.";
    // the window's hours that exist (a young market has fewer than 30 days)
    const zoomKey = `${m.ccy} ${m.window}`; // a zoom holds until another market or window is shown
    const x = hours.length ? { kind: "time", min: hours[0].ts, max: hours[hours.length - 1].ts, zoomKey } : { kind: "time", zoomKey };
    render($("chart-rates"), {
      id: "rates", x, y: { format: "pct" }, empty: none,
      series: [
        { id: "rate", label: "borrow rate", color: COLORS.rate, points: hours.map((h) => [h.ts, num(h.rate)]) },
        { id: "lendingRate", label: "lending rate", color: COLORS.lending, points: hours.map((h) => [h.ts, num(h.lendingRate)]) },
      ],
    });
    render($("chart-amounts"), {
      id: "amounts", height: 240, x, y: { format: "amount" }, empty: none,
      series: [
        { id: "lent", label: "lent", color: COLORS.lent, fill: true, stack: "a", points: hours.map((h) => [h.ts, num(h.lent)]) },
        { id: "pending", label: "pending", legend: "pending (offered, not lent)", color: COLORS.pending, fill: true, stack: "a", width: 1.5, points: hours.map((h) => [h.ts, num(h.pending)]) },
        { id: "demand", label: "demand", color: COLORS.demand, dash: true, width: 1.5, points: hours.map((h) => [h.ts, num(h.demand)]) },
      ],
    });
    for (const b of $("windows").querySelectorAll("button")) b.classList.toggle("active", b.dataset.window === m.window);
  }

  // --- catalog ------------------------------------------------------------------------------

  const range = (min, max) => (max === null ? (num(min) ? `${amt(num(min))}+` : "any amount") : `${amt(num(min))}–${amt(num(max))}`);

  function drawProducts(products) {
    $("products-empty").hidden = products.length > 0;
    $("products").hidden = !products.length;
    $("products").tBodies[0].innerHTML = products.map((p) => {
      const tiers = p.tiers.map((t) => `${range(t.min, t.max)}: <b>${esc(t.apy)}%</b>`).join("<br>");
      const used = p.quota === null ? null : num(p.quotaUsed) / num(p.quota);
      const quota = p.quota === null ? "no quota" :
        `<div class="bar"><div style="width:${(100 * used).toFixed(1)}%"></div></div>${amt(num(p.quotaUsed))} / ${amt(num(p.quota))} (${(100 * used).toFixed(1)}%)`;
      return `<tr data-product="${p.id}"><td>${p.id}</td><td>${esc(p.coin)}</td><td>${term(p)}</td><td>${esc(p.level)}</td>
        <td>${tiers}</td><td>${range(p.singleMin, p.singleMax)}</td><td class="quota">${quota}</td>
        <td><span class="badge ${esc(p.status)}">${esc(p.status.replace("_", " "))}</span></td></tr>`;
    }).join("");
    drawTiers(products);
  }

  const term = (p) => (p.periodType === "fixed" ? `fixed ${p.periodDays} d` : `flexible${p.redeemDelayDays ? `, D+${p.redeemDelayDays}` : ""}`);

  // One small chart per product: the APY each amount held earns, tier by tier.
  function drawTiers(products) {
    const box = $("tiers");
    const ids = products.map((p) => String(p.id));
    if ([...box.children].map((f) => f.dataset.product).join() !== ids.join()) {
      box.innerHTML = products.map((p) => `<figure data-product="${p.id}"><figcaption></figcaption><div class="chart-box tiny"></div></figure>`).join("");
    }
    products.forEach((p, i) => {
      const figure = box.children[i];
      figure.querySelector("figcaption").innerHTML = `#${p.id} ${esc(p.coin)} <small>${term(p)} · APY by amount held</small>`;
      const last = p.tiers[p.tiers.length - 1];
      // an open-ended last tier is drawn as far again as where it starts (or to 1 from 0)
      const end = (t) => (t.max === null ? Math.max(2 * num(t.min), 1) : num(t.max));
      const levels = p.tiers.map((t) => [num(t.min), end(t), num(t.apy) / 100]);
      render(figure.querySelector(".chart-box"), {
        id: `tiers-${p.id}`, height: 150, x: { kind: "amount", label: `${p.coin} held` }, y: { format: "pct" },
        series: [{ id: "apy", label: "APY", legend: last && last.max === null ? `APY (the last tier goes on past ${amt(num(last.min))})` : "APY", color: COLORS.tier, fill: true, points: staircase(levels) }],
      });
    });
  }

  // --- Simple Earn, as a Binance user sees the catalog ----------------------------------------

  const aprPct = (apr) => pct(num(apr));

  function drawEarn(products) {
    if (!products.some((p) => p.productId === state.earn)) state.earn = products.length ? products[0].productId : null;
    const html = products.map((p) => {
      const bands = p.bands.map((b) => `${amt(num(b.min))}–${amt(num(b.max))} ${esc(p.asset)}: <b>${aprPct(b.apr)}</b>`).join("<br>") || "–";
      return `<tr data-product="${esc(p.productId)}" class="${p.productId === state.earn ? "selected" : ""}">
        <td>${esc(p.productId)}</td><td>${esc(p.asset)}</td><td>${esc(p.kind)}</td>
        <td>${p.durationDays === null ? "–" : `${p.durationDays} d`}</td><td class="num">${aprPct(p.apr)}</td>
        <td>${bands}</td><td><span class="badge">${esc(p.status)}</span></td></tr>`;
    }).join("");
    const body = $("earn-products").tBodies[0];
    if (body.dataset.html !== html) { body.innerHTML = html; body.dataset.html = html; } // a row clicked stays put
  }

  // The product's APR as a step line: each change holds until the next, the last until now.
  function drawApr(history) {
    const changes = history.changes;
    $("earn-caption").textContent = `#${history.productId} ${history.asset}: the APR, changes since ${changes.length ? iso(changes[0].ts) : "–"}`;
    const levels = changes.map((c, i) => [c.ts, i + 1 < changes.length ? changes[i + 1].ts : Math.max(history.now, c.ts), num(c.apr)]);
    render($("chart-apr"), {
      id: "apr", height: 200, x: { kind: "time", zoomKey: history.productId }, y: { format: "pct" },
      series: [{ id: "apr", label: `APR (${history.asset})`, color: COLORS.rate, points: staircase(levels) }],
    });
  }

  async function loadEarn() {
    drawEarn(state.data.earn = await get("/earn/products"));
    const ref = state.earn;
    if (!ref) return;
    const history = await get(`/earn/products/${encodeURIComponent(ref)}/apr`);
    if (ref === state.earn) drawApr(state.data.apr = history); // not a poll's answer for the row clicked away from
  }

  // --- a user -------------------------------------------------------------------------------

  function table(title, columns, rows, note) {
    if (!rows.length) return `<h3>${title}</h3><p class="sub">none</p>`;
    const head = columns.map(([label, , cls]) => `<th class="${cls || ""}">${label}</th>`).join("");
    const body = rows.map((r) => `<tr>${columns.map(([, f, cls]) => `<td class="${cls || ""}">${f(r)}</td>`).join("")}</tr>`).join("");
    return `<h3>${title}</h3><div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>${note ? `<p class="note">${note}</p>` : ""}`;
  }

  function drawUser(u) {
    const n = "num";
    const markets = Object.fromEntries(((state.data.overview || {}).markets || []).map((m) => [m.ccy, m]));
    const lendNow = (r) => (markets[r.ccy] && markets[r.ccy].lendingRate !== null ? pct(num(markets[r.ccy].lendingRate)) : "–");
    const totals = u.earnings.map((e) => `${esc(e.total)} ${esc(e.ccy)} (${pct(num(e.realisedApy))} APY)`).join(" · ");
    $("user-summary").innerHTML = `<p><b>${esc(u.user.name)}</b> · id ${u.user.id} · level ${esc(u.user.level)}${
      u.earnings.length ? ` · earned this month: ${totals}` : ""}</p>`;
    drawEarnings(u.earnings);
    $("user").innerHTML = `<div class="user-grid"><div>${
      table("Funding balances", [["ccy", (r) => esc(r.ccy)], ["available", (r) => esc(r.available), n], ["frozen", (r) => esc(r.frozen), n]], u.funding)
    }${table("Trading balances", [["ccy", (r) => esc(r.ccy)], ["balance", (r) => esc(r.balance), n]], u.trading || [])
    }${table("Savings positions", [["ccy", (r) => esc(r.ccy)], ["amount", (r) => esc(r.amt), n], ["lent", (r) => esc(r.lent), n],
      ["pending", (r) => esc(r.pending), n], ["earnings", (r) => esc(r.earnings), n], ["own min rate", (r) => pct(num(r.rate)), n],
      ["market lends at", lendNow, n]], u.positions,
      "<b>own min rate</b>: the least the position accepts (it takes part in the hour's match only at or below the borrow rate); "
      + "<b>market lends at</b>: the lending rate of the last settled hour, what a taking-part offer earns on its whole amount.")
    }${table("Catalog holdings", [["product", (r) => r.productId], ["coin", (r) => esc(r.coin)], ["term", (r) => esc(r.periodType)],
      ["amount", (r) => esc(r.amount), n], ["last profit", (r) => esc(r.lastProfit), n], ["total profit", (r) => esc(r.totalProfit), n]], u.holdings)
    }</div><div>${table("Lending history (latest hours)", [["hour", (r) => formatTime(r.ts, true)], ["ccy", (r) => esc(r.ccy)],
      ["lent", (r) => esc(r.amt), n], ["earned", (r) => esc(r.earnings), n], ["rate", (r) => pct(num(r.rate)), n]], u.lending)
    }${table("Catalog orders", [["order", (r) => r.id], ["product", (r) => r.productId], ["type", (r) => esc(r.type)],
      ["amount", (r) => `${esc(r.amount)} ${esc(r.coin)}`, n], ["status", (r) => esc(r.status)], ["time", (r) => iso(r.ts)]], u.orders)
    }</div></div>`;
  }

  // The user's market interest in one currency: cumulative, and each hour's realised APY.
  function drawEarnings(earnings) {
    $("user-earnings").hidden = !earnings.length;
    if (!earnings.length) return;
    if (!earnings.some((e) => e.ccy === state.earning)) { // the market shown above, if it earns there
      state.earning = (earnings.find((e) => e.ccy === state.ccy) || earnings[0]).ccy;
    }
    $("earning-ccys").innerHTML = earnings.map((e) => `<button data-ccy="${esc(e.ccy)}" class="${e.ccy === state.earning ? "active" : ""}">${esc(e.ccy)}</button>`).join("");
    const e = earnings.find((x) => x.ccy === state.earning);
    let total = 0;
    const cumulative = e.hours.map(([ts, , , earned]) => [ts, (total += num(earned))]);
    const realised = e.hours.map(([ts, held, , earned]) => [ts, num(held) > 0 ? (num(earned) / num(held)) * HOURS_PER_YEAR : 0]);
    $("earned-caption").textContent = `cumulative interest: ${e.total} ${e.ccy} in ${e.hours.length} hours held`;
    const x = { kind: "time", min: e.hours[0][0], max: e.hours[e.hours.length - 1][0], zoomKey: `${state.user} ${e.ccy}` };
    render($("chart-earned"), {
      id: "earned", height: 200, x, y: { format: "amount" },
      series: [{ id: "earned", label: `earned (${e.ccy})`, color: COLORS.earned, fill: true, points: cumulative }],
    });
    render($("chart-realised"), {
      id: "realised", height: 200, x, y: { format: "pct" },
      series: [{ id: "realised", label: "realised APY", color: COLORS.rate, points: realised }],
      hlines: [{ id: "realisedApy", label: `over the month ${pct(num(e.realisedApy))}`, legend: "over the month", y: num(e.realisedApy), color: COLORS.lending }],
    });
  }

  async function loadUser() {
    if (!state.user) return;
    try {
      drawUser(state.data.user = await get(`/users/${encodeURIComponent(state.user)}`));
    } catch (error) {
      if (error.status === 401) $("user-token").hidden = false;
      $("user-earnings").hidden = true;
      $("user-summary").innerHTML = "";
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
      drawEngine(overview.engine, overview.clock);
      $("market").hidden = !state.ccy;
      const [ccy, span] = [state.ccy, state.window];
      const market = ccy && await get(`/markets/${ccy}?window=${span}`);
      if (market && ccy === state.ccy && span === state.window) drawMarket(state.data.market = market); // still the one chosen
      drawProducts(state.data.products = await get("/products"));
      await loadEarn();
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
  $("earning-ccys").addEventListener("click", (event) => {
    const ccy = event.target.dataset && event.target.dataset.ccy;
    if (ccy && state.data.user) { state.earning = ccy; saveHash(); drawEarnings(state.data.user.earnings); }
  });
  $("earn-products").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-product]");
    if (row) { state.earn = row.dataset.product; saveHash(); refresh(); }
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
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => {
      if (state.data.market) drawMarket(state.data.market);
      if (state.data.products) drawTiers(state.data.products);
      if (state.data.user) drawEarnings(state.data.user.earnings);
      if (state.data.apr) drawApr(state.data.apr);
    }, 150);
  });
  refresh();
})();
