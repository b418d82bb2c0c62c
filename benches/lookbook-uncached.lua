-- wrk script: lookbooks without a shopper, each with a different budget (never binding: 10,000
-- EUR and up, by the cent), so that no answer comes from the cache and every one is assembled
-- (shoppers without a profile share cached answers: a new shopper id alone would be served
-- from the cache). Budgets start from the clock, so repeated runs do not meet earlier ones.
counter = (os.time() % 9000) * 10000
request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("/api/lookbooks?occasion=weekend&season=winter&budget=%.2f", 10000 + counter / 100))
end
