-- The squid's tables, as `squid-typeorm-migration generate` writes them for src/model (the
-- bench applies this to the run's fresh database before starting lib/main.js).
CREATE TABLE "transfer" ("id" character varying NOT NULL, "block_number" integer NOT NULL, "block_hash" text NOT NULL, "tx_hash" text NOT NULL, "log_index" integer NOT NULL, "from" text NOT NULL, "to" text NOT NULL, "value" numeric NOT NULL, CONSTRAINT "PK_fd9ddbdd49a17afcbe014401295" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "IDX_transfer_tx_hash_log_index" ON "transfer" ("tx_hash", "log_index");
CREATE TABLE "account" ("id" character varying NOT NULL, "balance" numeric NOT NULL, CONSTRAINT "PK_54115ee388cdb6d86bb4bf5b2ea" PRIMARY KEY ("id"));
