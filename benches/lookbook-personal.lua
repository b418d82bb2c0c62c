-- wrk script: personalized lookbooks for the 300 shoppers of `vitrine shoppers simulate
-- --shoppers 300 --seed 1` in turn, each request with a different budget (never binding:
-- 10,000 EUR and up, by the cent), so that no answer comes from the cache and every one is
-- assembled from the shopper's profile. Budgets start from the clock, so repeated runs do not
-- meet earlier ones.
counter = (os.time() % 9000) * 10000
request = function()
  counter = counter + 1
  local shopper = string.format("sim-1-%04d", counter % 300 + 1)
  return wrk.format("GET", string.format("/api/lookbooks?occasion=weekend&season=winter&budget=%.2f&shopper=%s", 10000 + counter / 100, shopper))
end
