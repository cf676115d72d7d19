--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: parley_legacy; Type: SCHEMA; Schema: -; Owner: -
--



SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: channels; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.channels (
    id character varying(36) NOT NULL,
    unique_name character varying(256),
    friendly_name character varying(256),
    type character varying(16) NOT NULL,
    attributes jsonb,
    created_by_id character varying(36),
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    next_message_index bigint DEFAULT 0 NOT NULL,
    last_message_id character varying(36),
    last_activity_us bigint DEFAULT 0 NOT NULL,
    messages_count bigint DEFAULT 0 NOT NULL,
    members_count bigint DEFAULT 0 NOT NULL
);


--
-- Name: members; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.members (
    id character varying(36) NOT NULL,
    channel_id character varying(36) NOT NULL,
    user_id character varying(36) NOT NULL,
    role character varying(16) NOT NULL,
    last_read_index bigint,
    last_read_at timestamp with time zone,
    attributes jsonb,
    joined_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Name: messages; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.messages (
    id character varying(36) NOT NULL,
    channel_id character varying(36) NOT NULL,
    idx bigint NOT NULL,
    author_id character varying(36),
    body text NOT NULL,
    attributes jsonb,
    created_at timestamp with time zone NOT NULL,
    edited_at timestamp with time zone,
    deleted_at timestamp with time zone
);


--
-- Name: parley_secrets; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.parley_secrets (
    key text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: push_registrations; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.push_registrations (
    id character varying(36) NOT NULL,
    user_id character varying(36) NOT NULL,
    provider character varying(8) NOT NULL,
    token character varying(512) NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: users; Type: TABLE; Schema: parley_legacy; Owner: -
--

CREATE TABLE parley_legacy.users (
    id character varying(36) NOT NULL,
    identity character varying(256) NOT NULL,
    friendly_name character varying(256),
    attributes jsonb,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);


--
-- Data for Name: channels; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.channels VALUES ('01a231f8-b892-76f6-8f5e-3e104c8d0960', 'general', 'General', 'PUBLIC', '{"topic": "all"}', '01a231f8-b86a-7b57-9f3b-767fad17d57e', '2026-12-01 14:18:33.490451+00', '2026-12-01 14:18:33.490451+00', 3, '01a231f8-b98d-7ec1-820d-095b45f8b4d6', 1796134713741967, 2, 3);
INSERT INTO parley_legacy.channels VALUES ('01a231f8-b8ba-7ece-bb8f-679a78b55817', NULL, 'Secret', 'PRIVATE', NULL, '01a231f8-b893-7abe-946d-4f21b7d4e6f2', '2026-12-01 14:18:33.530966+00', '2026-12-01 14:18:33.530966+00', 1, '01a231f8-b9d9-77dd-b4e7-e378c747be08', 1796134713817516, 1, 2);


--
-- Data for Name: members; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.members VALUES ('01a231f8-b906-7cac-a354-a303fb98a4d2', '01a231f8-b8ba-7ece-bb8f-679a78b55817', '01a231f8-b86a-7b57-9f3b-767fad17d57e', 'ADMIN', NULL, NULL, NULL, '2026-12-01 14:18:33.606828+00', '2026-12-01 14:18:33.606828+00');
INSERT INTO parley_legacy.members VALUES ('01a231f8-b893-7ab3-9b5b-ae3e39cd0450', '01a231f8-b892-76f6-8f5e-3e104c8d0960', '01a231f8-b86a-7b57-9f3b-767fad17d57e', 'OWNER', 0, '2026-12-01 14:18:33.637459+00', NULL, '2026-12-01 14:18:33.490451+00', '2026-12-01 14:18:33.490451+00');
INSERT INTO parley_legacy.members VALUES ('01a231f8-b894-71ec-87fa-e67721233a01', '01a231f8-b892-76f6-8f5e-3e104c8d0960', '01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'MEMBER', 1, '2026-12-01 14:18:33.673951+00', NULL, '2026-12-01 14:18:33.490451+00', '2026-12-01 14:18:33.490451+00');
INSERT INTO parley_legacy.members VALUES ('01a231f8-b8e1-7c50-b022-41d1606a279f', '01a231f8-b892-76f6-8f5e-3e104c8d0960', '01a231f8-b8df-7e67-baec-fe4373a7664c', 'MEMBER', 2, '2026-12-01 14:18:33.741967+00', NULL, '2026-12-01 14:18:33.569803+00', '2026-12-01 14:18:33.569803+00');
INSERT INTO parley_legacy.members VALUES ('01a231f8-b8bb-70eb-8e90-a2e314b8ae5f', '01a231f8-b8ba-7ece-bb8f-679a78b55817', '01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'OWNER', 0, '2026-12-01 14:18:33.817516+00', NULL, '2026-12-01 14:18:33.530966+00', '2026-12-01 14:18:33.530966+00');


--
-- Data for Name: messages; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.messages VALUES ('01a231f8-b925-7701-9713-417ca44bd704', '01a231f8-b892-76f6-8f5e-3e104c8d0960', 0, '01a231f8-b86a-7b57-9f3b-767fad17d57e', 'Hello, world', '{"pinned": true}', '2026-12-01 14:18:33.637459+00', NULL, NULL);
INSERT INTO parley_legacy.messages VALUES ('01a231f8-b949-7e7f-9174-6662739909ee', '01a231f8-b892-76f6-8f5e-3e104c8d0960', 1, '01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'fixed', NULL, '2026-12-01 14:18:33.673951+00', '2026-12-01 14:18:33.709033+00', NULL);
INSERT INTO parley_legacy.messages VALUES ('01a231f8-b98d-7ec1-820d-095b45f8b4d6', '01a231f8-b892-76f6-8f5e-3e104c8d0960', 2, '01a231f8-b8df-7e67-baec-fe4373a7664c', '', NULL, '2026-12-01 14:18:33.741967+00', NULL, '2026-12-01 14:18:33.783317+00');
INSERT INTO parley_legacy.messages VALUES ('01a231f8-b9d9-77dd-b4e7-e378c747be08', '01a231f8-b8ba-7ece-bb8f-679a78b55817', 0, '01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'just us', NULL, '2026-12-01 14:18:33.817516+00', NULL, NULL);


--
-- Data for Name: parley_secrets; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.parley_secrets VALUES ('jwt-hs256', 'G3J3c/HzgyRXSbdUPrYxdp7DVOY1pzr1SzAg6jZF4yU=', '2026-12-01 14:18:32.621894+00');


--
-- Data for Name: push_registrations; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.push_registrations VALUES ('01a231f8-ba16-7062-a021-15a4a3baedff', '01a231f8-b86a-7b57-9f3b-767fad17d57e', 'FCM', 'fcm-token-1', '2026-12-01 14:18:33.878026+00');
INSERT INTO parley_legacy.push_registrations VALUES ('01a231f8-ba36-72c4-8522-6edcc1e64932', '01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'APNS', 'apns-token-1', '2026-12-01 14:18:33.910182+00');


--
-- Data for Name: users; Type: TABLE DATA; Schema: parley_legacy; Owner: -
--

INSERT INTO parley_legacy.users VALUES ('01a231f8-b86a-7b57-9f3b-767fad17d57e', 'alice', 'Alice', '{"n": 1, "theme": "dark"}', '2026-12-01 14:18:33.450738+00', '2026-12-01 14:18:33.452292+00');
INSERT INTO parley_legacy.users VALUES ('01a231f8-b893-7abe-946d-4f21b7d4e6f2', 'bob', NULL, NULL, '2026-12-01 14:18:33.491703+00', '2026-12-01 14:18:33.491703+00');
INSERT INTO parley_legacy.users VALUES ('01a231f8-b8df-7e67-baec-fe4373a7664c', 'carol', 'Carol "C" Ünicode', NULL, '2026-12-01 14:18:33.567939+00', '2026-12-01 14:18:33.567939+00');


--
-- Name: channels channels_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.channels
    ADD CONSTRAINT channels_pkey PRIMARY KEY (id);


--
-- Name: members members_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.members
    ADD CONSTRAINT members_pkey PRIMARY KEY (id);


--
-- Name: messages messages_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);


--
-- Name: parley_secrets parley_secrets_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.parley_secrets
    ADD CONSTRAINT parley_secrets_pkey PRIMARY KEY (key);


--
-- Name: push_registrations push_registrations_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.push_registrations
    ADD CONSTRAINT push_registrations_pkey PRIMARY KEY (id);


--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: parley_legacy; Owner: -
--

ALTER TABLE ONLY parley_legacy.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);


--
-- Name: idx_channels_type_id; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE INDEX idx_channels_type_id ON parley_legacy.channels USING btree (type);


--
-- Name: idx_channels_unique_name; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE UNIQUE INDEX idx_channels_unique_name ON parley_legacy.channels USING btree (unique_name);


--
-- Name: idx_members_channel_user; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE UNIQUE INDEX idx_members_channel_user ON parley_legacy.members USING btree (channel_id, user_id);


--
-- Name: idx_members_user_id; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE INDEX idx_members_user_id ON parley_legacy.members USING btree (user_id);


--
-- Name: idx_messages_channel_index; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE UNIQUE INDEX idx_messages_channel_index ON parley_legacy.messages USING btree (channel_id, idx);


--
-- Name: idx_push_provider_token; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE UNIQUE INDEX idx_push_provider_token ON parley_legacy.push_registrations USING btree (provider, token);


--
-- Name: idx_push_registrations_user_id; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE INDEX idx_push_registrations_user_id ON parley_legacy.push_registrations USING btree (user_id);


--
-- Name: idx_users_identity; Type: INDEX; Schema: parley_legacy; Owner: -
--

CREATE UNIQUE INDEX idx_users_identity ON parley_legacy.users USING btree (identity);


--
-- PostgreSQL database dump complete
--


